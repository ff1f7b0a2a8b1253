import pg from 'pg'
import type { Counter, Gauge} from 'prom-client';
import { type Registry } from 'prom-client'
import type { OperationLocks } from '../kernel/services.js'
import { isOurPostmaster, readPostmasterPid } from '../postgres/pidfile.js'
import { decide, type Decision, type Observed, type PrimaryObservation, type ReplicaObservation } from './decide.js'
import type { Leadership } from './leadership.js'
import { lsnDiff } from '../postgres/lsn.js'
import type { Logger, ReplicationManager, TopologyMember } from './manager.js'
import { clientConfig, sleep } from './pg.js'
import { setSyncStandbys } from './actions.js'
import { readFence } from './fence.js'
import { counterOn, gaugeOn } from '../telemetry/metrics.js'
import { FAILOVER_REFUSED } from './errors.js'
import type { FailoverResult } from './actions.js'

/**
 * The failover loop: observe → decide() → act, one sentence per tick.
 *
 * Observation is local and fast: the postmaster PID from postmaster.pid (a dead postmaster is
 * seen at once, no connect timeout to wait out), a persistent connection to the primary with a
 * write probe (a transaction with an xid, synchronous_commit=local so a stalled sync standby
 * does not read as a dead primary), and the supervisor's `instance.crashed`,
 * `instance.restart-failed` and `instance.failed` events, which wake the loop immediately; a
 * failed restart attempt of the primary ends the grace period at once.
 */
export type FailoverOutcome = FailoverResult & { reason: string }
type ProgressFn = NonNullable<Parameters<ReplicationManager['failover']>[1]>

/** An operator's failover waiting for the loop (see requestFailover). */
interface FailoverRequest {
  to?: string | undefined
  force?: boolean | undefined
  progress?: ProgressFn | undefined
  resolve(r: FailoverOutcome): void
  reject(err: unknown): void
}

export interface MonitorOptions {
  manager: ReplicationManager
  leadership: Leadership
  locks: OperationLocks
  log: Logger
  config(): { enabled: boolean; graceMs: number; startTimeoutMs?: number }
  /** Kernel event subscription (supervisor events wake the loop). */
  subscribe?: ((fn: (ev: { type: string; payload: unknown }) => void) => () => void) | undefined
  /** True when a supervisor restarts a crashed primary in place (then the grace period applies). */
  supervised: boolean
  metrics?: Registry | undefined
  intervalMs?: number
  leaseTtlMs?: number
  clock?: () => number
  /** After a failover, try to bring the old primary back with pg_rewind (never a re-clone). */
  autoRejoin?: boolean
  onDecision?: (d: Decision, o: Observed) => void
}

interface Metrics {
  failovers: Counter
  lastDuration: Gauge
  timeline: Gauge
  lagBytes: Gauge
  lagSeconds: Gauge
}

function metricsOn(reg: Registry): Metrics {
  return {
    failovers: counterOn(reg, { name: 'magflock_failovers_total', help: 'Failovers performed (automatic and operator).', labelNames: ['automatic'] }),
    lastDuration: gaugeOn(reg, { name: 'magflock_last_failover_duration_seconds', help: 'Duration of the last failover, from decision to promoted primary.' }),
    timeline: gaugeOn(reg, { name: 'magflock_timeline', help: 'Timeline of the current primary.' }),
    lagBytes: gaugeOn(reg, { name: 'magflock_replication_lag_bytes', help: 'Bytes of WAL the replica has not replayed yet.', labelNames: ['replica'] }),
    lagSeconds: gaugeOn(reg, { name: 'magflock_replication_lag_seconds', help: 'Replay lag of the replica in seconds.', labelNames: ['replica'] }),
  }
}

export class FailoverMonitor {
  private stopped = false
  private loopDone: Promise<void> | undefined
  private wake: (() => void) | undefined
  private kicked = false
  private client: pg.Client | undefined
  private clientFor: string | undefined
  private downSince: number | undefined
  private downFor: string | undefined
  private readonly failed = new Set<string>()
  /** Instances whose supervisor reported a crash and no restart outcome yet. */
  private readonly restarting = new Set<string>()
  private readonly lastSync = new Map<string, ReplicaObservation['lastSyncState']>()
  private last: { decision: Decision; at: number } | undefined
  private tickNo = 0
  private leader = false
  private leaseAt = 0
  private unsubscribe: (() => void) | undefined
  private readonly m: Metrics | undefined
  private readonly clock: () => number
  private acting: Promise<unknown> | undefined
  private readonly requests: FailoverRequest[] = []
  private rejoining: Promise<unknown> | undefined
  readonly history: string[] = []
  /**
   * Per replica, what the primary last reported in pg_stat_replication (refreshed on every
   * healthy tick): `magflock status` shows it without querying Postgres itself.
   */
  readonly replication = new Map<string, { lagBytes: number; lagSeconds: number; syncState: string; state: string; at: number }>()

  constructor(private readonly o: MonitorOptions) {
    this.clock = o.clock ?? Date.now
    this.m = o.metrics ? metricsOn(o.metrics) : undefined
  }

  start(): void {
    this.unsubscribe = this.o.subscribe?.((ev) => {
      const inst = (ev.payload as { instance?: string } | undefined)?.instance
      // A failed restart attempt (pg_control gone, data dir unusable, port taken) means the
      // primary cannot be restarted in place now: no point waiting out the grace period.
      if ((ev.type === 'instance.failed' || ev.type === 'instance.restart-failed') && inst) this.failed.add(inst)
      // A crash opens a restart in place; its outcome (restarted, restart-failed, failed) closes it.
      if (ev.type === 'instance.crashed' && inst) this.restarting.add(inst)
      if ((ev.type === 'instance.restarted' || ev.type === 'instance.restart-failed' || ev.type === 'instance.failed') && inst) this.restarting.delete(inst)
      if ((ev.type === 'instance.crashed' || ev.type === 'instance.failed' || ev.type === 'instance.restart-failed') && inst) {
        // Mid-tick, the wake-up is not lost: the next tick starts without a pause.
        this.kicked = true
        this.wake?.()
      }
    })
    this.loopDone = this.loop()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.wake?.()
    this.unsubscribe?.()
    await this.loopDone
    for (const r of this.requests.splice(0)) r.reject(FAILOVER_REFUSED({ sentence: 'the failover monitor stopped before acting' }))
    await this.acting?.catch(() => undefined)
    await this.rejoining?.catch(() => undefined)
    await this.dropClient()
    await this.o.leadership.release().catch(() => undefined)
  }

  /**
   * An operator's `magflock failover`: the API records the intent and wakes the loop; the
   * loop observes, decides (manual: no grace period, the operator's target and --force) and
   * acts, so the reason it gives is what it saw, and no second actor races it. Resolves with
   * the failover's result, or rejects with E_FAILOVER_REFUSED and the loop's sentence.
   */
  requestFailover(input: { to?: string | undefined; force?: boolean | undefined }, progress?: ProgressFn): Promise<FailoverOutcome> {
    if (this.stopped) return Promise.reject(FAILOVER_REFUSED({ sentence: 'the failover monitor is stopping' }))
    return new Promise<FailoverOutcome>((resolve, reject) => {
      this.requests.push({ ...input, progress, resolve, reject })
      this.kicked = true
      this.wake?.()
    })
  }

  lastDecision(): { decision: Decision; at: number } | undefined {
    return this.last
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let retry = this.o.intervalMs ?? 200
      this.kicked = false
      try {
        const d = await this.tick()
        if (d.action === 'wait') retry = Math.min(retry, Math.max(10, d.retryInMs))
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, 'failover monitor tick failed')
      }
      if (this.stopped) break
      if (this.kicked) continue
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, retry)
        this.wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      this.wake = undefined
    }
  }

  private async dropClient(): Promise<void> {
    const c = this.client
    this.client = undefined
    this.clientFor = undefined
    await c?.end().catch(() => undefined)
  }

  /** One probe of the primary: is it up and does it commit a write? */
  private async probePrimary(p: TopologyMember, password: string): Promise<{ reachable: boolean; writable: boolean; senders: Array<{ name: string; state: string; sync: string; replay: string | null; current: string; lag_s: number | null }> }> {
    const timeoutMs = 1000
    const attempt = async () => {
      if (!this.client || this.clientFor !== `${p.name}:${p.node.port}`) {
        await this.dropClient()
        const c = new pg.Client({ ...clientConfig({ superuser: this.o.manager.deps.superuser, password }, p.node), connectionTimeoutMillis: timeoutMs, application_name: 'magflock-monitor' })
        c.on('error', () => undefined)
        await c.connect()
        this.client = c
        this.clientFor = `${p.name}:${p.node.port}`
      }
      const c = this.client
      await c.query('begin')
      await c.query('set local synchronous_commit = local')
      const r = await c.query<{ rec: boolean }>('select pg_is_in_recovery() as rec, txid_current()')
      await c.query('commit')
      const rows = await c.query<{ name: string; state: string; sync: string; replay: string | null; current: string; lag_s: number | null }>(
        `select application_name as name, state, sync_state as sync, replay_lsn::text as replay, pg_current_wal_lsn()::text as current,
                extract(epoch from replay_lag)::float8 as lag_s
           from pg_stat_replication where application_name <> 'pg_basebackup'`,
      )
      return { reachable: true, writable: r.rows[0]?.rec === false, senders: rows.rows }
    }
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        attempt(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('probe timed out')), timeoutMs)
        }),
      ])
    } catch {
      // A hung or dead server: the client is in an unknown state, start afresh next time.
      const c = this.client
      this.client = undefined
      this.clientFor = undefined
      void c?.end().catch(() => undefined)
      return { reachable: false, writable: false, senders: [] }
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  /**
   * Gathers what decide() needs. `full`: ask every replica itself (an operator's request is
   * waiting): a walsender that just reconnected to a primary restarted in place reports no
   * replay position until the standby's first feedback, which would refuse a forced failover.
   */
  async observe(full = false): Promise<Observed> {
    const now = this.clock()
    const mgr = this.o.manager
    const members = mgr.deps.registry.list()
    const p = members.find((m) => m.role === 'primary')
    const ttl = this.o.leaseTtlMs ?? 3000
    // Renew at a third of the TTL, not every tick: the file lease fsyncs the state dir.
    if (!this.leader || now - this.leaseAt > ttl / 3) {
      this.leader = await this.o.leadership.acquire(ttl)
      this.leaseAt = now
    }
    const isLeader = this.leader
    const env = await mgr.env()
    let primary: PrimaryObservation | undefined
    let replicas: ReplicaObservation[] = []
    if (p) {
      const pidFile = await readPostmasterPid(p.node.dataDir).catch(() => undefined)
      const processAlive = pidFile ? await isOurPostmaster(pidFile.pid, p.node.dataDir) : false
      // A dead postmaster needs no probe: its port may already be someone else's.
      const probe = processAlive ? await this.probePrimary(p, env.password) : { reachable: false, writable: false, senders: [] }
      const up = probe.reachable && probe.writable
      if (up) {
        this.downSince = undefined
        this.failed.delete(p.name)
        this.restarting.delete(p.name)
        for (const s of probe.senders) this.lastSync.set(s.name, (['sync', 'potential', 'quorum'].includes(s.sync) ? s.sync : 'async') as ReplicaObservation['lastSyncState'])
        for (const s of probe.senders) {
          const lagBytes = lsnDiff(s.current, s.replay)
          this.m?.lagBytes.set({ replica: s.name }, lagBytes)
          this.m?.lagSeconds.set({ replica: s.name }, s.lag_s ?? 0)
          this.replication.set(s.name, { lagBytes, lagSeconds: s.lag_s ?? 0, syncState: s.sync, state: s.state, at: now })
        }
        for (const name of this.replication.keys()) if (!probe.senders.some((s) => s.name === name)) this.replication.delete(name)
      } else if (this.downSince === undefined || this.downFor !== p.name) {
        this.downSince = now
        this.downFor = p.name
        await this.dropClient()
      }
      primary = {
        name: p.name,
        reachable: probe.reachable,
        writable: probe.writable,
        processAlive,
        downSince: up ? undefined : this.downSince,
        // Nobody restarts an unsupervised primary; a supervised one that gave up is as good as gone.
        restartFailed: this.failed.has(p.name) || (!this.o.supervised && !processAlive),
        // A fence marker on the registered primary: a failover was cut short (kernel killed).
        fenced: !up && (await readFence(p.node.instanceDir).catch(() => undefined)) !== undefined,
        // A restart in place under way: the supervisor's attempt has no outcome yet, or a
        // postmaster runs again and does not accept connections yet (crash recovery).
        starting: !up && (this.restarting.has(p.name) || (processAlive && (pidFile?.status === 'starting' || pidFile?.status === ''))),
      }
      // Replicas are probed every tick while the primary is down, otherwise once a second
      // (to keep lag metrics and the split-brain hunt going without a connection storm).
      if (!up || full || this.tickNo % 5 === 0) {
        replicas = await mgr.observeReplicas(env, this.lastSync)
        if (up) await this.reconcileSync(p, probe.senders.filter((s) => s.state === 'streaming').map((s) => s.name)).catch(() => undefined)
      } else {
        replicas = members
          .filter((m) => m.role !== 'primary')
          .map((m) => ({ name: m.name, reachable: m.role !== 'fenced', inRecovery: m.role === 'fenced' ? undefined : true, replayLsn: probe.senders.find((s) => s.name === m.name)?.replay ?? undefined, lastSyncState: this.lastSync.get(m.name), fenced: m.role === 'fenced' }))
      }
    }
    this.tickNo++
    return { now, primary, replicas, topologyLockHolder: this.o.locks.holder('topology'), isLeader }
  }

  /**
   * Non-strict synchronous mode (Patroni's default): the primary waits for the configured
   * synchronous standbys that are connected; when none of them is, the setting is cleared so
   * commits never hang on a name nobody answers to, and restored when one is back.
   */
  private async reconcileSync(p: TopologyMember, streaming: string[]): Promise<void> {
    const mgr = this.o.manager
    const s = await mgr.state.read()
    const configured = mgr.syncNames(s, p.name)
    if (configured.length === 0) return
    const live = configured.filter((n) => streaming.includes(n))
    await setSyncStandbys(await mgr.env(), p.node, live.length > 0 ? configured : [])
  }

  async tick(): Promise<Decision> {
    if (this.acting) return { action: 'none', sentence: 'a failover is in progress' }
    const req = this.requests.shift()
    let o: Observed
    let s: Awaited<ReturnType<ReplicationManager['state']['read']>>
    try {
      o = await this.observe(req !== undefined)
      s = await this.o.manager.state.read()
    } catch (err) {
      req?.reject(err) // the operator hears why, instead of waiting forever
      throw err
    }
    const cfg = this.o.config()
    const syncMode = o.primary ? this.o.manager.syncNames(s, o.primary.name).length > 0 : false
    const d = decide(o, {
      failoverEnabled: cfg.enabled,
      graceMs: cfg.graceMs,
      startTimeoutMs: cfg.startTimeoutMs,
      syncMode,
      ...(req ? { manual: true, target: req.to, force: req.force } : {}),
    })
    this.record(d)
    this.o.onDecision?.(d, o)
    if (req && d.action !== 'failover') {
      req.reject(FAILOVER_REFUSED({ sentence: d.sentence }))
      return d
    }
    if (d.action === 'failover') {
      this.acting = this.act(d, o, req).finally(() => {
        this.acting = undefined
      })
      await this.acting
    } else if (d.action === 'fence') {
      const m = this.o.manager.member(d.target)
      const env = await this.o.manager.env()
      const { fence } = await import('./fence.js')
      this.o.manager.holdSupervision(d.target)
      await fence(env, m.node, d.sentence)
      await this.o.manager.deps.registry.setRole(d.target, 'fenced')
      this.o.manager.deps.events.publish('instance.fenced', { name: d.target, reason: d.sentence })
    }
    return d
  }

  private record(d: Decision): void {
    const prev = this.last?.decision.sentence
    this.last = { decision: d, at: this.clock() }
    // Log a sentence when it changes, not every 200 ms.
    if (prev !== d.sentence && d.action !== 'none') this.o.log.warn({ action: d.action }, d.sentence)
    else if (prev !== d.sentence) this.o.log.info({ action: d.action }, d.sentence)
    if (prev !== d.sentence) {
      this.history.push(d.sentence)
      if (this.history.length > 100) this.history.shift()
      this.o.manager.deps.events.publish('failover.decision', { action: d.action, sentence: d.sentence })
    }
  }

  private async act(d: Extract<Decision, { action: 'failover' }>, o: Observed, req?: FailoverRequest): Promise<void> {
    const mgr = this.o.manager
    let release: () => void
    try {
      release = this.o.locks.acquire('topology', 'failover')
    } catch (err) {
      req?.reject(err) // an operator hears who holds the topology; the loop decides again next tick
      return
    }
    const manual = req !== undefined
    // A manual failover of a primary that is down says so: the reason is what the loop saw.
    const reason = manual && !d.reason.startsWith('operator') ? `operator requested a failover: ${d.reason}` : d.reason
    try {
      let res: FailoverOutcome
      try {
        res = await mgr.failover({ to: d.to, force: true, automatic: !manual, reason, lockHeld: true, observed: o.replicas, primary: o.primary }, req?.progress)
      } catch (err) {
        req?.reject(err)
        if (manual) return
        throw err
      }
      req?.resolve(res)
      const ph = res.phases
      const sentence = `promoted ${res.to}: ${reason}; ${res.repointed.length} replica(s) repointed in ${res.durationMs} ms (fence ${ph.fenceMs}, promote ${ph.promoteMs}, sync ${ph.syncMs}, repoint ${ph.repointMs})`
      this.record({ action: 'none', sentence })
      this.m?.failovers.inc({ automatic: String(!manual) })
      this.m?.lastDuration.set(res.durationMs / 1000)
      this.m?.timeline.set(res.timeline)
      this.downSince = undefined
      this.failed.delete(d.from)
      this.restarting.delete(d.from)
      await this.dropClient()
    } finally {
      release()
    }
    // After an operator's failover the old primary stays fenced until `replica rejoin`.
    if (!req && (this.o.autoRejoin ?? true)) {
      // Best effort, in the background: pg_rewind only. A re-clone destroys the old data dir,
      // which an operator may want to inspect; that takes `magflock replica rejoin NAME`.
      this.rejoining = (async () => {
        await sleep(200)
        if (this.stopped) return
        try {
          const r = await mgr.rejoin(d.from, { allowReclone: false })
          this.record({ action: 'none', sentence: `${d.from} rejoined as a replica of ${d.to} (${r.method}) in ${r.durationMs} ms` })
        } catch (err) {
          this.record({ action: 'none', sentence: `${d.from} stays fenced: ${(err as Error).message.slice(0, 200)}` })
        }
      })()
    }
  }
}
