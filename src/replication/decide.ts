import { compareLsn } from '../postgres/lsn.js'

/**
 * The failover monitor's brain (after Patroni's ha.py): a pure function from what the
 * monitor observed and what the operator wants to one decision and one sentence saying why.
 * No I/O here; `act()` (failover-monitor.ts) alone touches Postgres. Every tick's sentence
 * is what `magflock status` shows and what the tests assert.
 *
 * Hazards this function is the single guard against:
 *  - two primaries: it never proposes a promotion while the registered primary is writable,
 *    and when it sees two writable instances it fences the one that is not registered;
 *  - failing over while a restore/switchover reshapes the flock (topology lock held);
 *  - promoting a replica that may be missing acknowledged commits in sync mode (only a
 *    standby that was synchronous at the last observation qualifies);
 *  - acting without holding leadership (a second monitor, later on another host).
 */

export interface PrimaryObservation {
  name: string
  /** pg_isready / a connection succeeded this tick. */
  reachable: boolean
  /** A write probe committed this tick (undefined when not probed). */
  writable: boolean | undefined
  /** The postmaster process exists (undefined when the monitor cannot tell, e.g. another host). */
  processAlive: boolean | undefined
  /** When the primary was first seen down (ms epoch); undefined while it is up. */
  downSince: number | undefined
  /**
   * The supervisor gave up restarting it (restart policy exhausted, or the data dir cannot
   * start): no point waiting out the grace period.
   */
  restartFailed: boolean
  /** Already fenced by us (stopped, standby.signal + fence marker written). */
  fenced: boolean
  /**
   * A restart in place is under way: the supervisor reported the crash and no outcome of its
   * attempt yet, or a postmaster runs for the data dir again and is still starting
   * (postmaster.pid status `starting`: crash recovery).
   */
  starting?: boolean | undefined
}

export interface ReplicaObservation {
  name: string
  reachable: boolean
  /** pg_is_in_recovery(); false means this instance accepts writes. */
  inRecovery: boolean | undefined
  /** pg_last_wal_replay_lsn() as text. */
  replayLsn: string | undefined
  /** pg_last_wal_receive_lsn() as text. */
  receiveLsn?: string | undefined
  /** sync_state the primary last reported for this standby while it was up. */
  lastSyncState: 'sync' | 'potential' | 'quorum' | 'async' | undefined
  fenced: boolean
  /** A write probe on this instance committed (split-brain hunt); undefined when not probed. */
  writable?: boolean | undefined
}

export interface Observed {
  now: number
  primary: PrimaryObservation | undefined
  replicas: ReplicaObservation[]
  /** Who holds the `topology` lock (a switchover, a restore, replica add/remove), if anyone. */
  topologyLockHolder: string | undefined
  /** This monitor holds the leadership lease. */
  isLeader: boolean
}

export interface Desired {
  failoverEnabled: boolean
  graceMs: number
  /**
   * How long a restart in place that is in crash recovery is waited for (the supervisor's own
   * start timeout, postgres.startTimeoutSeconds); a failed attempt ends the wait at once.
   * Undefined: no longer than graceMs.
   */
  startTimeoutMs?: number | undefined
  /** synchronous_standby_names is managed: only a synchronous standby may be promoted. */
  syncMode: boolean
  /** An operator's `magflock failover --to NAME`. */
  target?: string | undefined
  /** `--force`: skip the grace period and the sync-mode/lag safety checks. */
  force?: boolean | undefined
  /** An operator asked for a failover now (the API records the intent, the loop acts). */
  manual?: boolean | undefined
}

export type Decision =
  | { action: 'none'; sentence: string }
  | { action: 'wait'; sentence: string; retryInMs: number }
  | { action: 'failover'; from: string; to: string; sentence: string; reason: string }
  | { action: 'fence'; target: string; sentence: string }

export function seconds(ms: number): string {
  return `${(Math.round(ms / 100) / 10).toFixed(1)} s`
}

/** Why each replica is or is not a promotion candidate, best candidate first. */
export interface CandidateVerdict {
  name: string
  eligible: boolean
  why: string
  replayLsn: string | undefined
}

export function rankCandidates(replicas: ReplicaObservation[], opts: { syncMode: boolean; force?: boolean | undefined }): CandidateVerdict[] {
  const verdicts = replicas.map((r): CandidateVerdict => {
    const v = (eligible: boolean, why: string): CandidateVerdict => ({ name: r.name, eligible, why, replayLsn: r.replayLsn })
    if (r.fenced) return v(false, `${r.name} is fenced`)
    if (!r.reachable) return v(false, `${r.name} unreachable`)
    if (r.inRecovery === false) return v(false, `${r.name} is not in recovery`)
    if (!r.replayLsn) return v(false, `${r.name} has not replayed any WAL`)
    if (opts.syncMode && !opts.force && r.lastSyncState !== 'sync') return v(false, `${r.name} is not a synchronous standby`)
    return v(true, `${r.name} replayed ${r.replayLsn}`)
  })
  // Highest replayed LSN first; equal LSNs fall back to the name so the choice is stable.
  return verdicts.sort((a, b) => {
    if (a.eligible !== b.eligible) return a.eligible ? -1 : 1
    const c = compareLsn(b.replayLsn, a.replayLsn)
    return c !== 0 ? c : a.name.localeCompare(b.name)
  })
}

export function decide(o: Observed, d: Desired): Decision {
  if (!o.isLeader) return { action: 'none', sentence: 'not the leader: watching only' }

  // Split brain first: it matters more than anything else the loop could do.
  const writers = [
    ...(o.primary && o.primary.writable && !o.primary.fenced ? [o.primary.name] : []),
    ...o.replicas.filter((r) => !r.fenced && (r.writable === true || (r.reachable && r.inRecovery === false))).map((r) => r.name),
  ]
  if (writers.length > 1 && o.primary) {
    const stray = writers.find((w) => w !== o.primary?.name) as string
    const keep = writers.includes(o.primary.name) ? o.primary.name : undefined
    if (keep) {
      return {
        action: 'fence',
        target: stray,
        sentence: `fence ${stray}: ${writers.join(' and ')} both accept writes and ${keep} is the registered primary`,
      }
    }
  }

  const p = o.primary
  if (!p) return { action: 'none', sentence: 'no primary registered: nothing to watch' }

  const manual = d.manual === true
  const up = p.reachable && p.writable !== false && !p.fenced
  if (up && !manual) {
    // A fenced old primary is stopped on purpose: not a replica, never counted as reachable.
    const members = o.replicas.filter((r) => !r.fenced)
    const fenced = o.replicas.length - members.length
    const streaming = members.filter((r) => r.reachable && r.inRecovery).length
    return {
      action: 'none',
      sentence: `primary ${p.name} is healthy; ${streaming} of ${members.length} replicas reachable${fenced > 0 ? `; ${fenced} fenced (stopped; \`magflock replica rejoin\` brings it back)` : ''}`,
    }
  }

  // A topology change in progress owns the flock; acting now could create two primaries.
  if (o.topologyLockHolder) {
    return {
      action: 'none',
      sentence: `no failover: ${o.topologyLockHolder} holds the topology lock${up ? '' : ` (primary ${p.name} is down)`}`,
    }
  }

  if (!manual && !d.failoverEnabled) {
    return { action: 'none', sentence: `primary ${p.name} is down but automatic failover is disabled (replication.failover.enabled=false)` }
  }

  const downFor = p.downSince !== undefined ? Math.max(0, o.now - p.downSince) : 0
  const down = p.downSince !== undefined ? `primary ${p.name} unreachable for ${seconds(downFor)}` : `primary ${p.name} unreachable`
  const why = p.fenced ? `primary ${p.name} is fenced` : up ? `operator requested a failover from ${p.name}` : down

  // A fenced primary is never restarted in place (only `rejoin` lifts the fence): no grace.
  // A restart in place under way (crash recovery): a restart without data loss is near
  // (Patroni's master_start_timeout); a failed attempt (restartFailed) still fails over at once.
  // The attempt itself is bounded by the supervisor's start timeout (startTimeoutMs).
  if (!manual && !p.restartFailed && !p.fenced && p.starting && !up && downFor < Math.max(d.graceMs, d.startTimeoutMs ?? 0)) {
    return {
      action: 'wait',
      retryInMs: 200,
      sentence: `primary ${p.name} is restarting in place (down for ${seconds(downFor)}); waiting for the restart to succeed or fail`,
    }
  }
  if (!manual && !p.restartFailed && !p.fenced && downFor < d.graceMs) {
    return {
      action: 'wait',
      retryInMs: d.graceMs - downFor,
      sentence: `${why}; giving it until ${seconds(d.graceMs)} to restart in place`,
    }
  }

  // A failover interrupted after the promotion (kernel killed half-way) is finished, never
  // repeated with another replica: that one already accepts writes.
  const promoted = o.replicas.filter((r) => !r.fenced && r.reachable && r.inRecovery === false)
  if (promoted.length === 1 && !up) {
    const r = promoted[0] as ReplicaObservation
    return {
      action: 'failover',
      from: p.name,
      to: r.name,
      reason: `${why} and ${r.name} was already promoted`,
      sentence: `finish failover to ${r.name}: ${why} and ${r.name} already accepts writes`,
    }
  }

  const ranked = rankCandidates(o.replicas, { syncMode: d.syncMode, force: d.force })
  let choice: CandidateVerdict | undefined
  if (d.target) {
    const t = ranked.find((c) => c.name === d.target)
    if (!t) return { action: 'none', sentence: `no failover: ${d.target} is not a replica of this flock` }
    if (!t.eligible) return { action: 'none', sentence: `no failover to ${d.target}: ${t.why}` }
    const best = ranked[0]
    if (best && best.name !== t.name && compareLsn(best.replayLsn, t.replayLsn) > 0 && !d.force) {
      return {
        action: 'none',
        sentence: `no failover to ${t.name}: ${best.name} has replayed more WAL (${best.replayLsn} > ${t.replayLsn}); use --force to accept losing it`,
      }
    }
    choice = t
  } else {
    choice = ranked.find((c) => c.eligible)
  }
  if (!choice) {
    const reasons = ranked.map((c) => c.why).join(', ') || 'there are no replicas'
    return { action: 'none', sentence: `${why} but no replica can take over: ${reasons}` }
  }

  const eligible = ranked.filter((c) => c.eligible)
  const because = d.target
    ? `${choice.name} was requested`
    : eligible.length > 1
      ? `${choice.name} has the highest replayed LSN (${choice.replayLsn})`
      : `${choice.name} is the only eligible replica (${choice.replayLsn})`
  const restartNote = p.restartFailed && downFor < d.graceMs && !up ? ' and cannot be restarted' : ''
  return {
    action: 'failover',
    from: p.name,
    to: choice.name,
    reason: `${why}${restartNote}`,
    sentence: `promote ${choice.name}: ${why}${restartNote} and ${because}`,
  }
}
