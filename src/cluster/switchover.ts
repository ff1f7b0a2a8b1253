import { randomUUID } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { fence } from '../replication/fence.js'
import { compareLsn } from '../postgres/lsn.js'
import type { SwitchoverResult } from '../replication/actions.js'
import { readControlFile } from '../postgres/control-file.js'
import { clientConfig, sleep, sql, type PgNode, type ReplicationEnv } from '../replication/pg.js'
import type { EtcdFlockStore, EtcdLeadership } from './etcd-store.js'
import { SWITCHOVER_NOT_DONE, SWITCHOVER_TARGET_INVALID } from './errors.js'
import type { NodeHa } from './node-ha.js'
import type { DesiredOp, TopologyDoc } from './store.js'

/**
 * Switchover across hosts (Patroni's /switchover through the DCS): whichever kernel takes
 * `magflock switchover --to X` records the request under `desired/<leader>` in the flock
 * store; the leader's node carries it out and writes the result there; the requester polls.
 * No kernel-to-kernel RPC.
 *
 * The leader, with its HA loop held (NodeHa.exclusive; lease renewals go on):
 *  1. checks the target: an instance on another node, in sync mode the recorded sync standby
 *     (only it has every acknowledged commit);
 *  2. stops its primary cleanly (fast shutdown: the walsenders ship everything, up to the
 *     shutdown checkpoint) and fences it (standby.signal + marker: it can never start as a
 *     primary again on its own);
 *  3. waits until the target replayed the shutdown checkpoint;
 *  4. hands over: status.lastLeader = the target's node, then gives the leader key back; the
 *     target's HA loop acquires the free key (it is the sync standby) and promotes;
 *  5. waits until the target leads and is writable; the old primary's loop rejoins it as a
 *     replica (pg_rewind; after a clean stop usually nothing to rewind).
 *
 * Safety: the target promotes only with the key, which the old primary's node gives back only
 * after its primary is down and fenced: never two primaries. A failure before the hand-over
 * rolls back (the fence is lifted, the old primary starts again under the key it still holds).
 *
 * A kernel killed in the middle: before the fence, Postgres keeps serving and the restarted
 * kernel finds the request still open and carries it out again. After the fence, either the
 * restarted kernel takes its key back within the TTL (its loop resumes the fenced primary:
 * rolled back) and then carries the request out again, or the key expires first and the sync
 * standby (the target) acquires it and promotes: finished. Either way the open request is then
 * closed by the old leader's node (`closeStale`): done when the target leads.
 */
/** What a switchover across hosts reports: the same shape as a one-host switchover's result. */
export type SwitchoverDetail = SwitchoverResult

type Progress = (phase: string, message: string, fraction?: number) => void

function pgNodeOf(topo: TopologyDoc, instance: string): PgNode | undefined {
  const i = topo.instances[instance]
  const n = i ? topo.nodes[i.node] : undefined
  if (!i || !n) return undefined
  return { name: i.name, host: n.address, port: i.port, instanceDir: '', dataDir: '', logFile: '' }
}

/** The requester's side: records the request for the leader's node and waits for its result. */
export async function requestSwitchover(
  o: { store: EtcdFlockStore; leadership: EtcdLeadership; mode: 'sync' | 'async'; timeoutMs?: number },
  to: string | undefined,
  progress: Progress = () => undefined,
): Promise<SwitchoverDetail> {
  const [leader, topo, status] = await Promise.all([o.leadership.current(), o.store.topology(), o.store.status()])
  const target = to ?? status.syncStandby ?? Object.values(topo.instances).find((i) => i.node !== leader && i.role === 'replica')?.name
  if (!target) throw SWITCHOVER_TARGET_INVALID({ to: '(none given)', reason: 'the flock has no replica on another node' })
  if (!leader) throw SWITCHOVER_TARGET_INVALID({ to: target, reason: 'no node leads the flock right now (no leader key)' })
  const inst = topo.instances[target]
  if (!inst) throw SWITCHOVER_TARGET_INVALID({ to: target, reason: 'no instance of the flock has that name' })
  if (inst.node === leader) throw SWITCHOVER_TARGET_INVALID({ to: target, reason: `it is the primary already (node ${leader})` })
  if (o.mode === 'sync' && status.syncStandby !== target) {
    throw SWITCHOVER_TARGET_INVALID({ to: target, reason: `it is not the synchronous standby (${status.syncStandby ?? 'none yet'}), so it may lack acknowledged commits` })
  }
  const op: DesiredOp = { op: 'switchover', id: randomUUID(), to: target, requestedAt: new Date().toISOString() }
  await o.store.updateDesired(leader, (d) => ({ ...d, ops: [...d.ops.filter((x) => d.results[x.id] === undefined || x.requestedAt > new Date(Date.now() - 3600_000).toISOString()), op] }))
  progress('requested', `switchover to ${target} requested from ${leader}'s node`, 0.1)
  const deadline = Date.now() + (o.timeoutMs ?? 120_000)
  for (;;) {
    const r = (await o.store.desired(leader).catch(() => undefined))?.results[op.id]
    if (r) {
      if (!r.ok) throw SWITCHOVER_NOT_DONE({ to: target, reason: r.sentence })
      progress('done', r.sentence, 1)
      return r.detail as unknown as SwitchoverDetail
    }
    if (Date.now() > deadline) throw SWITCHOVER_NOT_DONE({ to: target, reason: `no result from ${leader}'s node within ${Math.round((o.timeoutMs ?? 120_000) / 1000)} s` })
    await sleep(100)
  }
}

export interface NodeSwitchoverOptions {
  node: string
  store: EtcdFlockStore
  leadership: EtcdLeadership
  ha: NodeHa
  env: ReplicationEnv
  local: PgNode
  mode: 'sync' | 'async'
  pollMs?: number
  log: (msg: string, fields?: Record<string, unknown>) => void
}

/** The leader's side: watches `desired/<node>` and carries out open switchover requests. */
export class NodeSwitchover {
  private timer: NodeJS.Timeout | undefined
  private busy: Promise<void> | undefined
  private stopped = false

  constructor(private readonly o: NodeSwitchoverOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.busy && !this.stopped) this.busy = this.once().catch((err: unknown) => this.o.log('switchover check failed', { err: (err as Error).message })).finally(() => (this.busy = undefined))
    }, this.o.pollMs ?? 250)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    await this.busy
  }

  private async result(id: string, ok: boolean, sentence: string, detail?: SwitchoverDetail): Promise<void> {
    this.o.log(sentence, { switchover: id, ok })
    await this.o.store.updateDesired(this.o.node, (d) => ({
      ...d,
      results: { ...d.results, [id]: { ok, sentence, at: new Date().toISOString(), ...(detail ? { detail: detail as unknown as Record<string, unknown> } : {}) } },
    }))
  }

  async once(): Promise<void> {
    const { store, node, leadership } = this.o
    const d = await store.desired(node)
    const op = d.ops.find((x) => x.op === 'switchover' && d.results[x.id] === undefined)
    if (!op || op.op !== 'switchover') return
    const [leader, topo] = await Promise.all([leadership.current(), store.topology()])
    const target = topo.instances[op.to]
    if (!target || target.node === node) return this.result(op.id, false, `${op.to} is not an instance on another node`)
    if (leader !== node) {
      // Closes a request this node could not finish itself (a kernel killed mid-switchover).
      if (leader === target.node) return this.result(op.id, true, `${op.to} on ${leader} leads: the switchover finished`, this.detail(node, op.to, 0, 0, '0/0', 0))
      if (leader === undefined) return
      return this.result(op.id, false, `${leader} leads now, not ${node}: the switchover to ${op.to} was not carried out`)
    }
    // Our key in the store, but this kernel has not renewed it yet (it just restarted): the HA loop first.
    if (leadership.validUntil() === 0) return
    await this.o.ha.exclusive(() => this.carryOut(op.id, op.to, topo))
  }

  private detail(from: string, to: string, outage: number, duration: number, finalLsn: string, timeline: number, phases: Partial<SwitchoverDetail['phases']> = {}): SwitchoverDetail {
    return {
      from,
      to,
      writeOutageMs: outage,
      durationMs: duration,
      timeline,
      finalLsn,
      repointed: [],
      rejoin: 'none',
      phases: { checkpointMs: 0, stopMs: 0, catchupMs: 0, fenceMs: 0, promoteMs: 0, repointMs: 0, rejoinMs: 0, syncMs: 0, ...phases },
    }
  }

  private async carryOut(id: string, to: string, topo: TopologyDoc): Promise<void> {
    const { env, local, store, leadership, node } = this.o
    const t0 = Date.now()
    const status = await store.status()
    if (this.o.mode === 'sync' && status.syncStandby !== to) return this.result(id, false, `${to} is not the synchronous standby (${status.syncStandby ?? 'none'})`)
    const targetNode = pgNodeOf(topo, to)
    const targetName = topo.instances[to]?.node
    if (!targetNode || !targetName) return this.result(id, false, `${to} has no known address`)
    const streaming = await sql<{ n: number }>(clientConfig(env, local), `select count(*)::int as n from pg_stat_replication where application_name = $1 and state = 'streaming'`, [to]).catch(() => [])
    if (streaming[0]?.n !== 1) return this.result(id, false, `${to} does not stream from the primary on ${node}`)

    // 2. Stop cleanly and fence.
    const tStop = Date.now()
    this.o.log(`switchover to ${to}: stopping the primary on ${node}`)
    await env.lifecycle.stop(local, 'fast', { pollMs: 10 })
    const stopMs = Date.now() - tStop
    const tFence = Date.now()
    await fence(env, local, `switchover to ${to}`)
    const fenceMs = Date.now() - tFence
    const ctl = await readControlFile(local.dataDir)
    const finalLsn = ctl?.checkpointLsn ?? '0/0'

    // 3. The target replays the shutdown checkpoint.
    const tCatch = Date.now()
    let caught = false
    while (Date.now() - tCatch < 30_000) {
      const r = await sql<{ lsn: string | null }>(clientConfig(env, targetNode), 'select pg_last_wal_replay_lsn()::text as lsn').catch(() => [])
      if (ctl && compareLsn(r[0]?.lsn ?? null, finalLsn) >= 0) {
        caught = true
        break
      }
      await sleep(20)
    }
    const catchupMs = Date.now() - tCatch
    if (!caught) {
      await this.rollBack(`${to} did not replay the shutdown checkpoint ${finalLsn} within 30 s`)
      return this.result(id, false, `${to} did not catch up with ${finalLsn} in 30 s; the primary on ${node} serves again`)
    }

    // 4. Hand over: the target's node is the next leader; the key goes free.
    await store.updateStatus((s) => ({ ...s, lastLeader: targetName, syncStandby: to, at: new Date().toISOString() }))
    const tPromote = Date.now()
    await leadership.release()

    // 5. The target acquires the key and promotes.
    let timeline = 0
    let led = false
    while (Date.now() - tPromote < 60_000) {
      const holder = await leadership.current().catch(() => undefined)
      if (holder === targetName) {
        const r = await sql<{ rec: boolean; tli: string }>(clientConfig(env, targetNode), `select pg_is_in_recovery() as rec, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli`).catch(() => [])
        if (r[0] && !r[0].rec) {
          timeline = parseInt(r[0].tli, 16)
          led = true
          break
        }
      } else if (holder !== undefined) break
      await sleep(20)
    }
    const promoteMs = Date.now() - tPromote
    if (!led) {
      const holder = await leadership.current().catch(() => undefined)
      if (holder === undefined) {
        // Nobody took it: take back the lead (the HA loop resumes the fenced primary).
        await store.updateStatus((s) => ({ ...s, lastLeader: node, at: new Date().toISOString() }))
        return this.result(id, false, `${to} did not take the leader key within 60 s; ${node} takes it back`)
      }
      if (holder !== targetName) return this.result(id, false, `${holder} took the leader key, not ${targetName}`)
    }
    await store
      .recordFailover({ from: node, to: targetName, reason: `switchover to ${to}`, at: new Date().toISOString(), automatic: false, durationMs: Date.now() - t0 })
      .catch(() => undefined)
    const outage = Date.now() - tStop
    return this.result(id, true, `switched over from ${local.name} on ${node} to ${to} on ${targetName} (write outage ${outage} ms)`, this.detail(local.name, to, outage, Date.now() - t0, finalLsn, timeline, { stopMs, fenceMs, catchupMs, promoteMs }))
  }

  /** Before the hand-over: lift the fence and start the primary again (this node still holds the key). */
  private async rollBack(reason: string): Promise<void> {
    const { env, local } = this.o
    this.o.log(`switchover rolled back: ${reason}`)
    await fsp.rm(path.join(local.dataDir, 'standby.signal'), { force: true })
    await fsp.rm(path.join(local.instanceDir, 'fence.json'), { force: true })
    await env.lifecycle.start(local)
  }
}
