import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { promote, rejoin, repoint, setSyncStandbys } from '../replication/actions.js'
import { fence, readFence } from '../replication/fence.js'
import type { Leadership } from '../replication/leadership.js'
import { compareLsn, parseLsn } from '../postgres/lsn.js'
import { clientConfig, withClient, type PgNode, type ReplicationEnv } from '../replication/pg.js'
import { exists } from '../platform/fs.js'
import { postmasterRunning } from '../postgres/pidfile.js'
import { decideNode, type LocalState, type NodeDecision, type NodeObserved } from './ha-decide.js'
import { DEFAULT_LEASE_MS } from './leader-view.js'
import type { FlockStore, MemberDoc, StatusDoc, TopologyDoc } from './store.js'

/**
 * The HA loop of one node of a multi-host flock: observe → decideNode() → act, one sentence
 * per tick (`lastDecision()`), plus a dead-man timer that demotes a local primary the moment
 * the lease can no longer be trusted, whatever the loop is busy with.
 *
 * Timing (defaults; docs/multi-host.md "Timing"): lease 2.5 s, a renewal (a heartbeat write
 * of the leader key) every 250 ms, safety margin 1 s. A primary cut off from the etcd majority
 * therefore stops writes at most 1.5 s after its last confirmed renewal was sent, while no
 * other node may take its key sooner than 2.5 s after it *received* that renewal's revision
 * (EtcdLeadership): 1 s in which the kill + fence of the local primary (a few ms) must
 * complete, and which also covers clock-rate drift between the hosts and a late dead-man timer
 * on a loaded machine. Promotion: the replica's leadership watch fires at the moment the key
 * has gone unchanged for the lease (a timer, not the next tick) and wakes its loop at once.
 */
export interface NodeHaOptions {
  node: string
  store: FlockStore
  leadership: Leadership & { validUntil(): number }
  env: ReplicationEnv
  /** The local instance; `host` is the address other nodes reach it at. */
  local: PgNode
  mode: 'sync' | 'async'
  ttlMs?: number
  marginMs?: number
  loopMs?: number
  /**
   * Time between successful lease renewals (default: every tick). Longer means a dead host's
   * lease has less left at the moment of death (faster failover, on average by
   * (renewMs − loopMs) / 2) but a primary rides out less etcd unavailability before its
   * dead-man timer demotes it: TTL − margin − renewMs in the worst case. A failed renewal is
   * retried at the next tick whatever this is.
   */
  renewMs?: number
  failoverEnabled?: boolean
  log?: (msg: string, fields?: Record<string, unknown>) => void
  onDecision?: (d: NodeDecision, o: NodeObserved) => void
  clock?: () => number
}

interface LocalLook {
  state: LocalState
  lsn?: string
  conninfo?: string
  streaming?: string[]
  syncNames?: string
}

export class NodeHa {
  private stopped = false
  private done: Promise<void> | undefined
  /** Resolves the loop's sleep; a wake that comes during a tick makes the loop skip its next sleep. */
  private wakeSleep: (() => void) | undefined
  private woken = false
  private readonly wake = (): void => {
    this.woken = true
    this.wakeSleep?.()
  }
  private deadman: NodeJS.Timeout | undefined
  private unwatch: (() => void) | undefined
  private last: { decision: NodeDecision; at: number } | undefined
  private fencing: Promise<unknown> | undefined
  private renewer: NodeJS.Timeout | undefined
  private renewing = false
  /** When the last successful renewal was sent (0: none, or the last attempt failed). */
  private renewedAt = 0
  private held = 0
  private ticking: Promise<unknown> = Promise.resolve()
  private restartedAt = 0
  private readonly ttlMs: number
  private readonly marginMs: number
  private readonly loopMs: number
  private readonly renewMs: number
  private readonly clock: () => number
  readonly history: string[] = []

  constructor(private readonly o: NodeHaOptions) {
    this.ttlMs = o.ttlMs ?? DEFAULT_LEASE_MS
    this.marginMs = o.marginMs ?? 1000
    this.loopMs = o.loopMs ?? 250
    this.renewMs = o.renewMs ?? this.loopMs
    this.clock = o.clock ?? Date.now
    if (this.marginMs >= this.ttlMs) throw new Error('the safety margin must be shorter than the lease TTL')
    if (this.renewMs >= this.ttlMs - this.marginMs) throw new Error('lease renewals must come more often than TTL − margin')
  }

  start(): void {
    // A change of the leader key (expiry, a new holder) wakes the loop at once.
    this.unwatch = this.o.leadership.watch(() => this.wake())
    // Renewals run on their own timer: a slow action of the loop (a rewind, a promotion, a
    // Postgres that does not answer) must never delay them into a self-demotion.
    this.renewer = setInterval(() => void this.renewOnce(), this.loopMs)
    this.done = this.loop()
  }

  private async renewOnce(): Promise<void> {
    if (this.renewing || this.stopped || this.o.leadership.validUntil() === 0) return
    if (this.clock() - this.renewedAt < this.renewMs - this.loopMs / 2) return
    this.renewing = true
    try {
      const sentAt = this.clock()
      const ok = await this.o.leadership.renew()
      this.renewedAt = ok ? sentAt : 0
      if (ok) this.arm()
    } finally {
      this.renewing = false
    }
  }

  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true
    this.wake()
    this.unwatch?.()
    if (this.renewer) clearInterval(this.renewer)
    await this.done
    if (this.deadman) clearTimeout(this.deadman)
    await this.fencing?.catch(() => undefined)
    if (opts.release) await this.o.leadership.release().catch(() => undefined)
  }

  /**
   * Runs `fn` with the loop's decisions held (a switchover acts alone on the local instance);
   * renewals and the dead-man timer go on. Waits for a tick under way first.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.held++
    try {
      await this.ticking.catch(() => undefined)
      return await fn()
    } finally {
      this.held--
      this.wake()
    }
  }

  lastDecision(): { decision: NodeDecision; at: number } | undefined {
    return this.last
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.woken = false
      try {
        if (this.held === 0) await (this.ticking = this.tick())
      } catch (err) {
        this.o.log?.('node HA tick failed', { err: (err as Error).message })
      }
      if (this.stopped) break
      // Woken while the tick ran (the leader key changed, or its holder just turned stale):
      // look again at once rather than a loop period later.
      if (this.woken && this.held === 0) continue
      await new Promise<void>((r) => {
        const t = setTimeout(r, this.loopMs)
        this.wakeSleep = () => {
          clearTimeout(t)
          r()
        }
      })
      this.wakeSleep = undefined
    }
  }

  /** Arms the dead-man timer for the lease we hold now. */
  private arm(): void {
    if (this.deadman) clearTimeout(this.deadman)
    const until = this.o.leadership.validUntil()
    if (until === 0) return
    const at = until - this.marginMs
    this.deadman = setTimeout(() => {
      // Renewed meanwhile: re-arm for the newer deadline.
      if (this.o.leadership.validUntil() - this.marginMs > this.clock()) return this.arm()
      void this.selfFence(`leader lease not renewed for ${this.ttlMs - this.marginMs} ms (dead-man timer, ${this.marginMs} ms before it can expire)`)
    }, Math.max(0, at - this.clock()))
  }

  private async selfFence(reason: string): Promise<void> {
    if (this.fencing) return
    this.fencing = (async () => {
      const look = await this.lookLocal()
      if (look.state !== 'primary') return
      this.say({ action: 'demote', sentence: `${reason}: demoting the primary on ${this.o.node}` })
      await fence(this.o.env, this.o.local, reason)
    })().finally(() => {
      this.fencing = undefined
    })
    await this.fencing
  }

  private say(d: NodeDecision, o?: NodeObserved): void {
    this.last = { decision: d, at: this.clock() }
    const prev = this.history.at(-1)
    if (prev !== d.sentence) {
      this.history.push(d.sentence)
      if (this.history.length > 200) this.history.shift()
      this.o.log?.(d.sentence, { action: d.action })
    }
    if (o) this.o.onDecision?.(d, o)
  }

  private async lookLocal(): Promise<LocalLook> {
    if (await readFence(this.o.local.instanceDir)) return { state: 'fenced' }
    try {
      return await withClient({ ...clientConfig(this.o.env, this.o.local), connectionTimeoutMillis: 1000, query_timeout: 1000 }, async (c) => {
        const r = await c.query<{ rec: boolean; lsn: string | null; ci: string; sync: string }>(
          `select pg_is_in_recovery() as rec,
                  case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text else pg_current_wal_lsn()::text end as lsn,
                  current_setting('primary_conninfo') as ci, current_setting('synchronous_standby_names') as sync`,
        )
        const row = r.rows[0]
        if (!row) return { state: 'down' as const }
        if (row.rec) return { state: 'replica' as const, ...(row.lsn ? { lsn: row.lsn } : {}), conninfo: row.ci }
        const s = await c.query<{ name: string }>(`select application_name as name from pg_stat_replication where state = 'streaming'`)
        return { state: 'primary' as const, ...(row.lsn ? { lsn: row.lsn } : {}), streaming: s.rows.map((x) => x.name), syncNames: row.sync }
      })
    } catch {
      return { state: 'down' }
    }
  }

  private nodeOf(topo: TopologyDoc, node: string): PgNode | undefined {
    const n = topo.nodes[node]
    const inst = Object.values(topo.instances).find((i) => i.node === node)
    if (!n || !inst) return undefined
    // Only host/port/name are used for a remote node.
    return { name: inst.name, host: n.address, port: inst.port, instanceDir: '', dataDir: '', logFile: '' }
  }

  /** May the local replica be promoted? Sync: it is the recorded sync standby. Async: no fresher member replayed more. */
  private async candidate(status: StatusDoc, topo: TopologyDoc, look: LocalLook): Promise<boolean> {
    if (this.o.mode === 'sync') return status.syncStandby === this.o.local.name
    const fresh = this.clock() - 3 * this.ttlMs
    for (const other of Object.keys(topo.nodes)) {
      if (other === this.o.node) continue
      const m: MemberDoc | null = await this.o.store.member(other).catch(() => null)
      if (!m || m.role !== 'replica' || m.at < fresh) continue
      const c = compareLsn(m.lsn ?? null, look.lsn ?? null)
      if (c > 0 || (c === 0 && other < this.o.node)) return false
    }
    return true
  }

  async tick(): Promise<NodeDecision> {
    // A dead-man fence in flight writes its marker before it kills: a tick that looked in
    // between would see "fenced", lift the marker and start Postgres, and the kill would then
    // leave the instance down and unfenced. The fence finishes first; the tick looks after.
    if (this.fencing) await this.fencing.catch(() => undefined)
    const look = await this.lookLocal()
    const holding = this.o.leadership.validUntil() > 0
    let storeOk = true
    let leader: string | undefined
    let status: StatusDoc = { syncStandby: null }
    let topo: TopologyDoc = { nodes: {}, instances: {} }
    try {
      ;[leader, status, topo] = await Promise.all([this.o.leadership.current(), this.o.store.status(), this.o.store.topology()])
    } catch {
      storeOk = false
      leader = undefined
    }
    const leaderNode = leader && leader !== this.o.node ? this.nodeOf(topo, leader) : undefined
    const observed: NodeObserved = {
      now: this.clock(),
      node: this.o.node,
      local: look.state,
      storeOk,
      leader,
      holding,
      validUntil: this.o.leadership.validUntil(),
      marginMs: this.marginMs,
      failoverEnabled: this.o.failoverEnabled ?? true,
      candidate: storeOk && look.state === 'replica' ? await this.candidate(status, topo, look) : false,
      lastLeader: status.lastLeader,
      leaderReachable: leaderNode !== undefined,
      postmasterGone: look.state === 'down' ? !(await postmasterRunning(this.o.local.dataDir)) : false,
    }
    const d = decideNode(observed)
    this.say(d, observed)
    await this.act(d, look, status, topo, leaderNode)
    if (storeOk) {
      const after = d.action === 'keep' || d.action === 'follow' || d.action === 'wait' ? look : await this.lookLocal()
      await this.o.store
        .putMember({ node: this.o.node, instance: this.o.local.name, role: after.state, ...(after.lsn ? { lsn: after.lsn } : {}), sentence: d.sentence, at: this.clock(), ttlMs: this.ttlMs, marginMs: this.marginMs })
        .catch(() => undefined)
    }
    return d
  }

  private async acquire(): Promise<boolean> {
    const ok = await this.o.leadership.acquire(this.ttlMs).catch(() => false)
    if (ok) this.arm()
    return ok
  }

  private async act(d: NodeDecision, look: LocalLook, status: StatusDoc, topo: TopologyDoc, leaderNode: PgNode | undefined): Promise<void> {
    const { env, local, store } = this.o
    switch (d.action) {
      case 'keep':
        if (status.lastLeader !== this.o.node) await store.updateStatus((s) => ({ ...s, lastLeader: this.o.node, at: new Date().toISOString() })).catch(() => undefined)
        if (this.o.mode === 'sync') await this.keepSync(look, status, topo)
        return
      case 'acquire':
        if (await this.acquire()) await store.updateStatus((s) => ({ ...s, lastLeader: this.o.node, at: new Date().toISOString() })).catch(() => undefined)
        return
      case 'demote':
        if (this.deadman) clearTimeout(this.deadman)
        await this.selfFence(d.sentence)
        await this.o.leadership.release().catch(() => undefined)
        return
      case 'promote': {
        const tA = this.clock()
        if (this.o.leadership.validUntil() === 0 && !(await this.acquire())) return
        const t0 = this.clock()
        try {
          // The store names this node the last leader BEFORE its instance takes a single write.
          // A self-fenced old primary resumes only as the last leader; recorded after the
          // promotion (a write that can fail while etcd elects a leader), the old primary could
          // resume over writes acknowledged here.
          await store.updateStatus((s) => ({ ...s, lastLeader: this.o.node, at: new Date().toISOString() }))
          const tS = this.clock()
          await promote(env, local, 60)
          this.o.log?.('promoted', { acquireMs: t0 - tA, statusMs: tS - t0, promoteMs: this.clock() - tS })
        } catch (err) {
          // Not promoted: give the key back so another candidate can try.
          await this.o.leadership.release().catch(() => undefined)
          throw err
        }
        const from = status.lastLeader ?? 'unknown'
        await store.updateStatus((s) => ({ ...s, syncStandby: null, at: new Date().toISOString() })).catch(() => undefined)
        await store
          .recordFailover({ from, to: this.o.node, reason: d.sentence, at: new Date().toISOString(), automatic: true, durationMs: this.clock() - t0 })
          .catch(() => undefined)
        return
      }
      case 'resume':
        // A dead-man fence that began after this tick looked: let the next tick decide.
        if (this.fencing) return
        if (this.o.leadership.validUntil() === 0 && !(await this.acquire())) return
        // Self-fenced, still the freshest copy: lift the fence and serve again.
        await fsp.rm(path.join(local.dataDir, 'standby.signal'), { force: true })
        await fsp.rm(path.join(local.instanceDir, 'fence.json'), { force: true })
        try {
          await env.lifecycle.start(local)
        } catch (err) {
          // Not serving: fenced again, so the next tick tries again instead of leaving an
          // instance that is neither fenced nor running (and no primary anywhere).
          await fence(env, local, `resuming failed: ${(err as Error).message.slice(0, 200)}`)
          throw err
        }
        await store.updateStatus((s) => ({ ...s, lastLeader: this.o.node, at: new Date().toISOString() })).catch(() => undefined)
        return
      case 'rejoin':
        if (!leaderNode) return
        await rejoin(env, local, leaderNode, { allowReclone: true, timeoutMs: 120_000 })
        return
      case 'follow':
        if (leaderNode && look.conninfo !== undefined && !look.conninfo.includes(`host=${leaderNode.host} port=${leaderNode.port} `)) {
          await repoint(env, local, leaderNode)
        }
        return
      case 'restart':
        // At most one attempt per TTL: a start that fails (a port taken, a broken data
        // directory) is logged by the loop and tried again later, not 4 times a second.
        if (this.clock() - this.restartedAt < this.ttlMs) return
        this.restartedAt = this.clock()
        await startDownInstance(env, local)
        return
      case 'wait':
        return
    }
  }

  /**
   * Sync mode on the primary: once a replica streams, record it as the sync standby in the
   * store *first*, then make it synchronous. Never drops it (strict): a commit is acknowledged
   * only after the recorded standby has it, so promoting that standby loses nothing.
   */
  private async keepSync(look: LocalLook, status: StatusDoc, topo: TopologyDoc): Promise<void> {
    let name = status.syncStandby
    if (name === this.o.local.name) {
      // Recorded while this node was the standby (a promotion whose status update failed).
      await this.o.store.updateStatus((st) => ({ ...st, syncStandby: null }))
      name = null
    }
    if (name === null) {
      // Only a flock member: pg_basebackup's own WAL stream shows up in pg_stat_replication too.
      // …and one that joined as a sync standby (`node join --async` ones never are).
      const s = look.streaming?.find((n) => n !== this.o.local.name && topo.instances[n]?.node !== undefined && topo.instances[n]?.node !== this.o.node && topo.instances[n]?.sync !== false)
      if (!s) return
      await this.o.store.updateStatus((st) => ({ ...st, syncStandby: s }))
      name = s
    }
    if (!look.syncNames?.includes(name)) await setSyncStandbys(this.o.env, this.o.local, [name])
  }
}

/**
 * Brings back a local instance that is down with no postmaster (a restarted node, a crashed or
 * killed postmaster). A standby starts as one; a former primary is only fenced, never started
 * as a primary here: the HA loop then resumes it if this node holds (or gets back) the leader
 * key, or rejoins it to the leader elsewhere.
 */
export async function startDownInstance(env: ReplicationEnv, local: PgNode): Promise<'started' | 'fenced'> {
  if (await exists(path.join(local.dataDir, 'standby.signal'))) {
    await env.lifecycle.start(local)
    return 'started'
  }
  await fence(env, local, 'instance found down with no postmaster; the leader key decides what it becomes')
  return 'fenced'
}

/** For `node list`: bytes a member's replay position is behind the leader's. */
export function lagBytes(leaderLsn: string | undefined, lsn: string | undefined): number | undefined {
  if (!leaderLsn || !lsn) return undefined
  let d: bigint
  try {
    d = parseLsn(leaderLsn) - parseLsn(lsn)
  } catch {
    return undefined
  }
  return d > 0n ? Number(d) : 0
}
