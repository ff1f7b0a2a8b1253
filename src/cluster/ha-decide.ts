/**
 * The per-node HA decision for a flock spread over several hosts (Patroni's ha.py, as a pure
 * function): what this node's kernel does with its local instance this tick, and one sentence
 * saying why. `node-ha.ts` observes and acts; this file only decides, and is table-tested.
 *
 * Safety rules it encodes (docs/multi-host.md):
 *  - A local primary keeps serving only while this node holds the leader lease. When renewals
 *    fail it keeps serving until `validUntil - marginMs`, then demotes itself (kill + fence):
 *    before the lease can expire in etcd, hence before anyone can acquire it and promote.
 *  - A replica is promoted only by the node that acquired the leader key, which it can take
 *    only once the key is free or has gone unchanged for the lease on its own clock (then by
 *    a compare-and-swap on the revision it timed: EtcdLeadership), and only if it may be
 *    promoted (sync mode: it is the recorded synchronous standby; async: nobody has replayed more).
 *  - With the store unreachable a replica does nothing at all, and a fenced instance stays
 *    fenced: nothing destructive happens without the store's say.
 */
export type LocalState = 'primary' | 'replica' | 'fenced' | 'down'

export interface NodeObserved {
  now: number
  node: string
  local: LocalState
  /** The store answered this tick. */
  storeOk: boolean
  /** Leader key holder (node name) as read this tick; undefined: nobody, a holder that stopped renewing, or store unreachable. */
  leader: string | undefined
  /** This node holds the leader lease (a lease object that was granted and not lost). */
  holding: boolean
  /** Until when the held lease is certainly ours (see EtcdLeadership.validUntil). */
  validUntil: number
  marginMs: number
  failoverEnabled: boolean
  /** This node's replica may be promoted (sync: recorded sync standby; async: most replayed). */
  candidate: boolean
  /** The store's record of the last leader (node name), to tell self-demotion from being replaced. */
  lastLeader: string | undefined
  /** The leader's Postgres address is known (needed to rejoin it). */
  leaderReachable: boolean
  /**
   * The local instance is down and no postmaster serves its data directory (crashed, killed,
   * or stopped by a fence that was then lifted): nobody else will start it on a node.
   */
  postmasterGone?: boolean
}

export type NodeAction =
  | 'keep' // primary with the lease: renew and serve
  | 'acquire' // primary (or self-fenced last leader) without a held lease, key free or ours: take it
  | 'demote' // primary that cannot be sure of the lease any more: stop writes now
  | 'promote' // replica that acquired (or may acquire) the free key
  | 'resume' // self-fenced last leader that got the key back: unfence and serve
  | 'rejoin' // fenced old primary with a new leader elsewhere: pg_rewind, follow
  | 'restart' // down with no postmaster: a standby starts as one, a former primary is fenced first
  | 'follow' // replica following the leader
  | 'wait' // nothing to do now

export interface NodeDecision {
  action: NodeAction
  sentence: string
}

export function decideNode(o: NodeObserved): NodeDecision {
  const d = (action: NodeAction, sentence: string): NodeDecision => ({ action, sentence })
  const leftMs = o.validUntil - o.marginMs - o.now
  if (o.local === 'primary') {
    if (o.holding && leftMs > 0) {
      if (o.storeOk && o.leader === o.node) return d('keep', `holding the leader lease: primary on ${o.node} keeps serving`)
      if (o.storeOk && o.leader !== undefined && o.leader !== o.node) return d('demote', `the leader key names ${o.leader}: demoting the primary on ${o.node}`)
      if (o.storeOk && o.leader === undefined) return d('demote', `the leader key vanished or went stale (not renewed): demoting the primary on ${o.node}`)
      return d('keep', `could not confirm the leader lease; primary on ${o.node} serves at most ${Math.max(0, Math.round(leftMs))} ms more before it demotes itself`)
    }
    if (o.holding) return d('demote', `leader lease not renewed in time (${o.marginMs} ms safety margin before it can expire): demoting the primary on ${o.node}`)
    if (!o.storeOk) return d('demote', `flock store unreachable and no leader lease held: demoting the primary on ${o.node} so it takes no writes another node could lose`)
    if (o.leader === undefined || o.leader === o.node) return d('acquire', `leader key ${o.leader === o.node ? 'names this node' : 'is free'}: taking it for the primary on ${o.node}`)
    return d('demote', `the leader key names ${o.leader}: demoting the primary on ${o.node}`)
  }
  if (!o.storeOk) return d('wait', `flock store unreachable: doing nothing on ${o.node} (local instance ${o.local})`)
  if (o.local === 'fenced') {
    if (o.leader === undefined) {
      if (o.lastLeader === o.node) return d('resume', `leader key is free and ${o.node} was the last leader (it demoted itself): taking the key back and serving again`)
      return d('wait', `fenced instance on ${o.node} waits for a leader to rejoin`)
    }
    if (o.leader === o.node) return d('resume', `this node holds the leader key: unfencing its instance`)
    if (!o.leaderReachable) return d('wait', `fenced instance on ${o.node} waits for ${o.leader}'s address to rejoin it`)
    return d('rejoin', `${o.leader} leads: rejoining the old primary on ${o.node} as its replica (pg_rewind, re-clone as fallback)`)
  }
  if (o.local === 'down') {
    // Down with a postmaster still there: starting, stopping or too busy to answer this tick.
    if (!o.postmasterGone) return d('wait', `local instance on ${o.node} does not answer; its postmaster is still there`)
    return d('restart', `local instance on ${o.node} is down with no postmaster: starting it again (a standby as a standby; a former primary is fenced first and the leader key decides)`)
  }
  // replica
  if (o.leader === undefined) {
    if (!o.failoverEnabled) return d('wait', `leader key is free but automatic failover is off`)
    if (!o.candidate) return d('wait', `leader key is free; the replica on ${o.node} is not a promotion candidate`)
    return d('promote', `leader key free or not renewed for the lease, and the replica on ${o.node} is the candidate: acquiring the key, then promoting`)
  }
  if (o.leader === o.node) return d('promote', `this node holds the leader key: promoting its replica`)
  return d('follow', `following ${o.leader}`)
}
