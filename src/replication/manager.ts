import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { exists, readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import pg from 'pg'
import type { EventPublisher, AuditRecordInput } from '../kernel/component.js'
import type { OperationLocks } from '../kernel/services.js'
import { isPortFree } from '../platform/ports.js'
import type { OsUser } from '../platform/os-user.js'
import type { StateLayout } from '../platform/paths.js'
import type { PgBinaries } from '../postgres/binaries.js'
import type { BackupManifest } from '../backup/manifest.js'
import * as actions from './actions.js'
import { nextInstanceName, reservedInstanceName } from '../postgres/instance-names.js'
import { createReplicaFromBackup } from './from-backup.js'
import './events.js'
import type { PrimaryHooks } from './hooks.js'
import { FAILOVER_REFUSED, INVALID_REPLICA_NAME, NO_CANDIDATE, REPLICA_BACKUP_UNUSABLE, REPLICA_DIR_EXISTS, REPLICA_EXISTS, REPLICA_NOT_FOUND, SWITCHOVER_TARGET } from './errors.js'
import { addFaultPoint } from './fault.js'
import { decide, rankCandidates, type PrimaryObservation, type ReplicaObservation } from './decide.js'
import { readFence } from './fence.js'
import { clientConfig, killInstance, pgCtlLifecycle, type InstanceLifecycle, type PgNode, type ReplicationEnv } from './pg.js'
import { ensureReplicator, REPLICATOR_ROLE } from './role.js'
import { ReplicationStateFile, type ReplicationState } from './state.js'
import { primaryStatus, standbyStatus, type PrimaryStatus } from './status.js'

/** In `instances/<name>/` while `replica add` runs: an add cut short is rolled back, never adopted. */
export const ADD_MARKER = 'adding.json'
const AddMarker = z.object({ name: z.string(), port: z.number(), startedAt: z.string() })

export type Role = 'primary' | 'replica' | 'fenced'

export interface TopologyMember {
  name: string
  role: Role
  node: PgNode
}

/**
 * What the manager needs from the kernel's instance registry. The kernel owns instances and
 * their supervisors; the manager asks it to take a new instance under supervision, drop one,
 * or record a role change. `pause`/`resume` keep a supervisor from restarting an instance the
 * manager stops on purpose (switchover, fencing).
 */
export interface TopologyRegistry {
  list(): TopologyMember[]
  addInstance(node: PgNode, role: Role): Promise<void>
  removeInstance(name: string): Promise<void>
  setRole(name: string, role: Role): Promise<void>
  pauseSupervision?(name: string): Promise<void> | void
  resumeSupervision?(name: string): Promise<void> | void
}

export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface ReplicationDeps {
  layout: StateLayout
  bins: PgBinaries
  runAs: OsUser | undefined
  superuser: string
  /** Resolves the superuser password (vault) at call time. */
  password(): Promise<string>
  /**
   * Resolves (creating it on first use) the replication role's password from the vault. Absent:
   * standbys keep logging in as the superuser (tests of the actions alone).
   */
  replicatorPassword?(): Promise<string>
  registry: TopologyRegistry
  locks: OperationLocks
  events: EventPublisher
  log: Logger
  audit?: { append(rec: AuditRecordInput): Promise<unknown> }
  lifecycle?: InstanceLifecycle
  basePort: number
  /** Skip fsync in clones (tests, benchmarks). */
  noSync?: boolean
  /** Awaited hooks around a change of primary (the pooler); none in tests of the manager alone. */
  primaryHooks?: PrimaryHooks
  /** Where `replica add --from-backup` finds physical backups and the WAL archive. */
  backups?: { dir: string; walDir: string; kek(m: BackupManifest): Promise<Buffer | undefined> }
}

export interface ReplicaInfo {
  name: string
  role: Role
  port: number
  host: string
  sync: boolean
  state: string
  syncState: string | null
  replayLsn: string | null
  lagBytes: number | null
  lagSeconds: number | null
  timeline: number | null
  fenced: boolean
}

export type ProgressFn = (phase: string, message: string, fraction?: number) => void

export class ReplicationManager {
  readonly state: ReplicationStateFile
  private readonly lifecycle: InstanceLifecycle

  constructor(readonly deps: ReplicationDeps) {
    this.state = new ReplicationStateFile(path.join(deps.layout.root, 'replication.json'))
    this.lifecycle = deps.lifecycle ?? pgCtlLifecycle(deps.bins, deps.runAs)
  }

  async env(): Promise<ReplicationEnv> {
    const password = await this.deps.password()
    // Only once the role exists: a failover in a flock that never had it keeps the superuser.
    const replicator = this.deps.replicatorPassword && (await this.state.read()).replicator ? { user: REPLICATOR_ROLE, password: await this.deps.replicatorPassword() } : undefined
    return {
      bins: this.deps.bins,
      runAs: this.deps.runAs,
      superuser: this.deps.superuser,
      password,
      replicator,
      lifecycle: this.supervisedLifecycle(),
      log: (msg, fields) => this.deps.log.info(fields ?? {}, msg),
    }
  }

  /**
   * The replication role in place on the primary, with the vault's password, before any
   * topology change (replica add, switchover, rejoin). The first time in a flock that predates
   * it, the running replicas are moved over: passfile, then primary_conninfo naming the role
   * (a reload; their WAL receivers reconnect). When the password changed (a rotated secret),
   * every standby's passfile is rewritten. Returns the env to use from here on.
   */
  async ensureReplicationRole(env: ReplicationEnv, primary: TopologyMember): Promise<ReplicationEnv> {
    if (!this.deps.replicatorPassword) return env
    const login = { user: REPLICATOR_ROLE, password: await this.deps.replicatorPassword() }
    const { changed } = await ensureReplicator(clientConfig(env, primary.node), login.password)
    const next: ReplicationEnv = { ...env, replicator: login }
    const had = (await this.state.read()).replicator === true
    if (!had) await this.state.update((st) => void (st.replicator = true))
    if (!had || changed) {
      for (const m of this.deps.registry.list().filter((x) => x.role === 'replica')) {
        try {
          await actions.repoint(next, m.node, primary.node)
          // Its WAL receiver reconnects as the role; a switchover right after needs it streaming.
          await actions.waitStreaming(next, primary.node, m.name, 15_000)
        } catch (err) {
          // Unreachable now: its next switchover or rejoin writes the new settings.
          this.deps.log.warn({ instance: m.name, err: (err as Error).message }, 'could not move the replica to the replication role yet')
        }
      }
      this.deps.log.info({ role: REPLICATOR_ROLE, created: !had }, 'replication role in place')
    }
    return next
  }

  /** Stops pause supervision first (a planned stop is not a crash); starts resume it after. */
  private supervisedLifecycle(): InstanceLifecycle {
    const reg = this.deps.registry
    return {
      start: async (node) => {
        await this.lifecycle.start(node)
        await reg.resumeSupervision?.(node.name)
      },
      stop: async (node, mode, opts) => {
        await reg.pauseSupervision?.(node.name)
        await this.lifecycle.stop(node, mode, opts)
      },
    }
  }

  primary(): TopologyMember {
    const p = this.deps.registry.list().find((m) => m.role === 'primary')
    if (!p) throw NO_CANDIDATE({ reason: 'the flock has no primary' })
    return p
  }

  member(name: string): TopologyMember {
    const m = this.deps.registry.list().find((x) => x.name === name)
    if (!m) throw REPLICA_NOT_FOUND({ name })
    return m
  }

  replicas(): TopologyMember[] {
    return this.deps.registry.list().filter((m) => m.role !== 'primary')
  }

  /** Synchronous standbys the primary `primaryName` should wait for. */
  syncNames(s: ReplicationState, primaryName: string, streaming?: Set<string>): string[] {
    return Object.entries(s.replicas)
      .filter(([name, r]) => r.sync && name !== primaryName && (!streaming || streaming.has(name)))
      .map(([name]) => name)
      .sort()
  }

  private async nextPort(): Promise<number> {
    const used = new Set(this.deps.registry.list().map((m) => m.node.port))
    for (let p = this.deps.basePort; p < this.deps.basePort + 1000; p++) {
      if (!used.has(p) && (await isPortFree(p))) return p
    }
    throw SWITCHOVER_TARGET({ reason: `no free port from ${this.deps.basePort} (replication.basePort)` })
  }

  nodeFor(name: string, port: number): PgNode {
    const l = this.deps.layout
    return { name, host: '127.0.0.1', port, instanceDir: l.instanceDir(name), dataDir: l.dataDir(name), logFile: l.instanceLog(name) }
  }

  private publish(type: string, payload: unknown): void {
    this.deps.events.publish(type, payload)
  }

  async add(
    input: { name?: string | undefined; sync?: boolean | undefined; fromBackup?: string | undefined },
    progress?: ProgressFn,
  ): Promise<ReplicaInfo & { source: 'primary' | 'backup'; backupId: string | null; durationMs: number }> {
    const existing = new Set(this.deps.registry.list().map((m) => m.name))
    const name = input.name ?? nextInstanceName(existing)
    if (existing.has(name)) throw REPLICA_EXISTS({ name })
    if (!actions.REPLICA_NAME.test(name) || reservedInstanceName(name)) throw INVALID_REPLICA_NAME({ name })
    const release = this.deps.locks.acquire('topology', `replica add ${name}`)
    try {
      const t0 = Date.now()
      const primary = this.primary()
      const env = await this.ensureReplicationRole(await this.env(), primary)
      // What an interrupted add of this name left (data dir, running standby, slot) goes first.
      if (await this.readAddMarker(name)) await this.rollbackAdd(env, name, 'an earlier add of it was interrupted')
      else if (await exists(path.join(this.deps.layout.dataDir(name), 'PG_VERSION'))) throw REPLICA_DIR_EXISTS({ name, dir: this.deps.layout.dataDir(name) })
      const node = this.nodeFor(name, await this.nextPort())
      // The intent, on disk before anything is made: a kernel killed from here on leaves a
      // marked directory that the next kernel (or a retry) rolls back.
      await fsp.mkdir(node.instanceDir, { recursive: true, mode: 0o700 })
      await writeJsonAtomic(path.join(node.instanceDir, ADD_MARKER), { name, port: node.port, startedAt: new Date().toISOString(), kernelPid: process.pid })
      let backupId: string | null
      try {
        backupId = await this.addSteps(env, primary, node, input, progress)
      } catch (err) {
        await this.rollbackAdd(env, name, `adding it failed: ${(err as Error).message}`).catch(() => undefined)
        throw err
      }
      const slot = actions.slotName(name)
      const s = await this.state.read()
      if (input.sync) {
        progress?.('sync', `making ${name} a synchronous standby`)
        await actions.setSyncStandbys(env, primary.node, this.syncNames(s, primary.name))
        await actions.waitStreaming(env, primary.node, name, 30_000, this.syncNames(s, primary.name)[0] === name)
      }
      const durationMs = Date.now() - t0
      this.publish('replica.added', { name, port: node.port, sync: input.sync === true, slot, durationMs })
      const info = (await this.list()).find((r) => r.name === name) as ReplicaInfo
      return { ...info, source: backupId ? 'backup' : 'primary', backupId, durationMs }
    } finally {
      release()
    }
  }

  /** Clone, start, register: the part of `add` an interruption can cut short. */
  /** Clone, start, register: the part of `add` an interruption can cut short. Returns the backup used. */
  private async addSteps(
    env: ReplicationEnv,
    primary: TopologyMember,
    node: PgNode,
    input: { sync?: boolean | undefined; fromBackup?: string | undefined },
    progress?: ProgressFn,
  ): Promise<string | null> {
    let backupId: string | null = null
    if (input.fromBackup !== undefined) {
      if (!this.deps.backups) throw REPLICA_BACKUP_UNUSABLE({ id: input.fromBackup, reason: 'this flock has no backup directory' })
      const b = this.deps.backups
      const r = await createReplicaFromBackup(env, primary.node, node, { backupsDir: b.dir, walDir: b.walDir, id: input.fromBackup, kek: (m) => b.kek(m), ...(progress ? { progress } : {}) })
      backupId = r.backupId
    } else {
      await actions.createReplica(env, primary.node, node, { noSync: this.deps.noSync ?? false, ...(progress ? { progress } : {}) })
    }
    addFaultPoint('after-start')
    await this.state.update((st) => {
      st.replicas[node.name] = { sync: input.sync === true, addedAt: new Date().toISOString() }
    })
    await this.deps.registry.addInstance(node, 'replica')
    // Registered: from now on it is a member, no longer an add to roll back.
    await fsp.rm(path.join(node.instanceDir, ADD_MARKER), { force: true })
    return backupId
  }

  private async readAddMarker(name: string): Promise<{ name: string; port: number; startedAt: string } | undefined> {
    return readJsonFile(path.join(this.deps.layout.instanceDir(name), ADD_MARKER), (v) => AddMarker.parse(v)).catch(() => undefined)
  }

  /**
   * Undoes an add that did not finish: stops whatever Postgres runs in its data dir, drops its
   * slot on the primary, removes its directory and its replication.json entry. Only for a
   * name that is not a member (a registered replica is removed with `replica remove`).
   */
  private async rollbackAdd(env: ReplicationEnv, name: string, why: string): Promise<void> {
    if (this.deps.registry.list().some((m) => m.name === name)) return
    const marker = await this.readAddMarker(name)
    const node = this.nodeFor(name, marker?.port ?? 0)
    await killInstance(env, node)
    const primary = this.deps.registry.list().find((m) => m.role === 'primary')
    const res = await actions.removeReplica(env, primary?.node, node)
    const s = await this.state.read()
    if (s.replicas[name]) {
      await this.state.update((st) => {
        delete st.replicas[name]
      })
    }
    this.deps.log.warn({ name, slotDropped: res.slotDropped }, `rolled back the add of replica ${name}: ${why}`)
    this.publish('replica.removed', { name, slotDropped: res.slotDropped })
  }

  /**
   * At boot: every add a killed kernel left half done (a marked instance directory that is not
   * a member) is rolled back, so its slot does not pin WAL on the primary forever and a retry
   * starts clean. Returns the names rolled back.
   */
  async rollbackInterruptedAdds(): Promise<string[]> {
    const names = await fsp.readdir(this.deps.layout.instancesDir).catch(() => [] as string[])
    const members = new Set(this.deps.registry.list().map((m) => m.name))
    const done: string[] = []
    for (const name of names.sort()) {
      if (members.has(name) || !actions.REPLICA_NAME.test(name) || !(await this.readAddMarker(name))) continue
      const release = this.deps.locks.acquire('topology', `roll back replica add ${name}`)
      try {
        await this.rollbackAdd(await this.env(), name, 'the kernel that was adding it died')
        done.push(name)
      } finally {
        release()
      }
    }
    return done
  }

  async remove(name: string): Promise<{ name: string; slotDropped: boolean }> {
    const m = this.member(name)
    if (m.role === 'primary') throw SWITCHOVER_TARGET({ reason: `${name} is the primary; switch over first (\`magflock switchover\`)` })
    const release = this.deps.locks.acquire('topology', `replica remove ${name}`)
    try {
      const env = await this.env()
      const primary = this.deps.registry.list().find((x) => x.role === 'primary')
      // Clear the name from synchronous_standby_names BEFORE the standby goes away, or every
      // commit on the primary would wait for it forever.
      const s = await this.state.update((st) => {
        delete st.replicas[name]
      })
      if (primary) await actions.setSyncStandbys(env, primary.node, this.syncNames(s, primary.name)).catch(() => undefined)
      await this.deps.registry.removeInstance(name)
      const res = await actions.removeReplica(env, primary?.node, m.node)
      this.publish('replica.removed', { name, slotDropped: res.slotDropped })
      return { name, ...res }
    } finally {
      release()
    }
  }

  async list(): Promise<ReplicaInfo[]> {
    const env = await this.env()
    const s = await this.state.read()
    const members = this.deps.registry.list()
    const p = members.find((m) => m.role === 'primary')
    let ps: PrimaryStatus | undefined
    if (p) ps = await primaryStatus(clientConfig(env, p.node)).catch(() => undefined)
    const out: ReplicaInfo[] = []
    for (const m of members) {
      const fenced = (await readFence(m.node.instanceDir).catch(() => undefined)) !== undefined
      const base = { name: m.name, role: m.role, port: m.node.port, host: m.node.host, sync: s.replicas[m.name]?.sync ?? false, fenced }
      if (m.role === 'primary') {
        out.push({ ...base, state: ps ? 'running' : 'unreachable', syncState: null, replayLsn: ps?.currentLsn ?? null, lagBytes: 0, lagSeconds: 0, timeline: ps?.timeline ?? null })
        continue
      }
      const sender = ps?.senders.find((x) => x.name === m.name)
      const st = await standbyStatus(clientConfig(env, m.node)).catch(() => undefined)
      out.push({
        ...base,
        state: fenced ? 'fenced' : st ? (sender?.state ?? (st.inRecovery ? 'disconnected' : 'not in recovery')) : 'unreachable',
        syncState: sender?.syncState ?? null,
        replayLsn: st?.replayLsn ?? sender?.replayLsn ?? null,
        lagBytes: sender ? sender.lagBytes : null,
        lagSeconds: sender ? (sender.replayLagSeconds ?? 0) : null,
        timeline: st?.timeline ?? null,
      })
    }
    return out
  }

  async switchover(input: { to?: string | undefined }, progress?: ProgressFn): Promise<actions.SwitchoverResult> {
    const primary = this.primary()
    const candidates = this.replicas().filter((m) => m.role === 'replica')
    const release = this.deps.locks.acquire('topology', 'switchover')
    try {
      const env = await this.ensureReplicationRole(await this.env(), primary)
      let target: TopologyMember | undefined
      if (input.to) {
        target = this.member(input.to)
        if (target.role !== 'replica') throw SWITCHOVER_TARGET({ reason: `${input.to} is ${target.role}, not a replica` })
      } else {
        // The most caught-up streaming replica; in sync mode a synchronous one.
        const ps = await primaryStatus(clientConfig(env, primary.node))
        const s = await this.state.read()
        const sync = this.syncNames(s, primary.name).length > 0
        const obs: ReplicaObservation[] = candidates.map((c) => {
          const snd = ps.senders.find((x) => x.name === c.name)
          return { name: c.name, reachable: !!snd, inRecovery: true, replayLsn: snd?.replayLsn ?? undefined, lastSyncState: snd?.syncState, fenced: false }
        })
        const ranked = rankCandidates(obs, { syncMode: sync })
        const best = ranked.find((r) => r.eligible)
        if (!best) throw SWITCHOVER_TARGET({ reason: ranked.map((r) => r.why).join(', ') || 'there are no replicas' })
        target = this.member(best.name)
      }
      const others = candidates.filter((c) => c.name !== target.name).map((c) => c.node)
      await this.state.update((st) => {
        st.inProgress = { op: 'switchover', from: primary.name, to: target.name, startedAt: new Date().toISOString() }
        const wasSync = st.replicas[target.name]?.sync ?? false
        delete st.replicas[target.name]
        st.replicas[primary.name] = { sync: wasSync, addedAt: new Date().toISOString() }
      })
      const s = await this.state.read()
      const hookError = (err: Error) => this.deps.log.warn({ err: err.message }, 'a primary-change hook failed')
      await this.deps.primaryHooks?.run('beforeSwitchover', [primary.node, target.node], hookError)
      let res: actions.SwitchoverResult
      try {
        res = await actions.switchover(env, primary.node, target.node, others, {
          noSync: this.deps.noSync ?? false,
          syncNames: (np) => this.syncNames(s, np),
          ...(progress ? { progress } : {}),
          onPromoted: async () => {
            await this.deps.registry.setRole(primary.name, 'fenced')
            await this.deps.registry.setRole(target.name, 'primary')
            await this.deps.primaryHooks?.run('primaryChanged', [target.node, { planned: true, from: primary.name }], hookError)
          },
        })
      } finally {
        await this.deps.primaryHooks?.run('afterSwitchover', [this.deps.registry.list().some((m) => m.name === target.name && m.role === 'primary')], hookError)
      }
      await this.deps.registry.setRole(primary.name, 'replica')
      await this.state.update((st) => {
        delete st.inProgress
      })
      this.publish('switchover.completed', { from: res.from, to: res.to, writeOutageMs: res.writeOutageMs, durationMs: res.durationMs, timeline: res.timeline })
      return res
    } finally {
      release()
    }
  }

  /**
   * Operator or automatic failover. The decision goes through the same decide() the monitor
   * uses, so a manual `failover` obeys the same safety rules (sync mode, LSN order) unless
   * --force. `observe` supplies fresh observations.
   */
  async failover(
    input: {
      to?: string | undefined
      force?: boolean | undefined
      automatic?: boolean
      reason?: string
      lockHeld?: boolean
      /** Fresh observations from the monitor's tick (saves a connection per replica). */
      observed?: ReplicaObservation[]
      /** The monitor's observation of the primary; without it, one probe here (never invented). */
      primary?: PrimaryObservation | undefined
    },
    progress?: ProgressFn,
  ): Promise<actions.FailoverResult & { reason: string }> {
    const release = input.lockHeld ? () => undefined : this.deps.locks.acquire('topology', 'failover')
    try {
      const env = await this.env()
      const primary = this.primary()
      const s = await this.state.read()
      const obs = input.observed ?? (await this.observeReplicas(env))
      const primaryObs = input.primary ?? (await this.probePrimaryOnce(env, primary))
      const d = decide(
        { now: Date.now(), primary: primaryObs, replicas: obs, topologyLockHolder: undefined, isLeader: true },
        { failoverEnabled: true, graceMs: 0, syncMode: this.syncNames(s, primary.name).length > 0, target: input.to, force: input.force, manual: true },
      )
      if (d.action !== 'failover') throw FAILOVER_REFUSED({ sentence: d.sentence })
      const reason = input.reason ?? (input.automatic || d.reason.startsWith('operator') ? d.reason : `operator requested a failover: ${d.reason}`)
      const target = this.member(d.to)
      const others = this.replicas().filter((m) => m.name !== target.name && m.role === 'replica').map((m) => m.node)
      // One state write (an fsync pair) on the failover's critical path, not two. The old
      // primary inherits the target's sync flag: once it has rejoined and streams, the monitor
      // names it in synchronous_standby_names again (never before: no hanging commits).
      const st2 = await this.state.update((st) => {
        st.inProgress = { op: 'failover', from: primary.name, to: target.name, startedAt: new Date().toISOString() }
        // A failover finished by the next kernel (this one was killed) finds this done already.
        const wasSync = st.replicas[target.name]?.sync ?? st.replicas[primary.name]?.sync ?? false
        delete st.replicas[target.name]
        st.replicas[primary.name] = { sync: wasSync, addedAt: new Date().toISOString() }
      })
      this.publish('failover.started', { from: primary.name, to: target.name, reason, automatic: input.automatic === true })
      this.deps.log.warn({ from: primary.name, to: target.name }, d.sentence)
      let res: actions.FailoverResult
      try {
        this.holdSupervision(primary.name)
        res = await actions.failover(env, primary.node, target.node, others, {
          reason,
          syncNames: this.syncNames(st2, target.name, new Set(others.map((o) => o.name))),
          ...(progress ? { progress } : {}),
          // The registry follows at once, so status and `db url` name the new primary early.
          onPromoted: async () => {
            await this.deps.registry.setRole(primary.name, 'fenced')
            await this.deps.registry.setRole(target.name, 'primary')
            await this.deps.primaryHooks?.run('primaryChanged', [target.node, { planned: false, from: primary.name }], (err) => this.deps.log.warn({ err: err.message }, 'a primary-change hook failed'))
          },
        })
      } catch (err) {
        this.publish('failover.failed', { from: primary.name, to: target.name, error: (err as Error).message })
        throw err
      }
      await this.deps.registry.setRole(primary.name, 'fenced')
      await this.deps.registry.setRole(target.name, 'primary')
      const done = await this.state.update((st) => {
        delete st.inProgress
        st.failoversTotal += 1
        st.lastFailover = { from: primary.name, to: target.name, reason, at: new Date().toISOString(), durationMs: res.durationMs, automatic: input.automatic === true }
      })
      void done
      this.publish('instance.fenced', { name: primary.name, reason })
      this.publish('failover.completed', { from: primary.name, to: target.name, reason, automatic: input.automatic === true, durationMs: res.durationMs, timeline: res.timeline, repointed: res.repointed })
      if (input.automatic) {
        await this.deps.audit
          ?.append({ actor: 'failover-monitor', action: 'failover', target: target.name, result: 'ok', details: { from: primary.name, to: target.name, reason, durationMs: res.durationMs, timeline: res.timeline } })
          .catch(() => undefined)
      }
      return { ...res, reason }
    } finally {
      release()
    }
  }

  /**
   * What a failover without the monitor's observation sees of the primary: one connection and
   * one read, now. Down is "unreachable" without a duration: nobody watched it go down.
   */
  private async probePrimaryOnce(env: ReplicationEnv, p: TopologyMember): Promise<PrimaryObservation> {
    let reachable = false
    let writable = false
    const c = new pg.Client({ ...clientConfig(env, p.node), connectionTimeoutMillis: 2000 })
    c.on('error', () => undefined)
    try {
      await c.connect()
      reachable = true
      writable = (await c.query<{ rec: boolean }>('select pg_is_in_recovery() as rec')).rows[0]?.rec === false
    } catch {
      // unreachable
    } finally {
      await c.end().catch(() => undefined)
    }
    const fenced = !writable && (await readFence(p.node.instanceDir).catch(() => undefined)) !== undefined
    return { name: p.name, reachable, writable, processAlive: undefined, downSince: undefined, restartFailed: !reachable, fenced }
  }

  /**
   * Keeps the supervisor of `name` from restarting it, without waiting for a restart attempt
   * in flight: that attempt may be waiting for the very postmaster fencing is about to kill
   * (killInstance kills first, then waits for the supervisor through the lifecycle's stop).
   * The pause itself takes effect synchronously, before this returns.
   */
  holdSupervision(name: string): void {
    void Promise.resolve(this.deps.registry.pauseSupervision?.(name)).catch(() => undefined)
  }

  /** Standby observations for decide(); sync state comes from the primary when it answers. */
  async observeReplicas(env: ReplicationEnv, lastSync?: Map<string, ReplicaObservation['lastSyncState']>): Promise<ReplicaObservation[]> {
    const out: ReplicaObservation[] = []
    const s = await this.state.read()
    for (const m of this.replicas()) {
      const fenced = m.role === 'fenced' || (await readFence(m.node.instanceDir).catch(() => undefined)) !== undefined
      const st = await standbyStatus({ ...clientConfig(env, m.node), connectionTimeoutMillis: 1000 }).catch(() => undefined)
      out.push({
        name: m.name,
        reachable: !!st,
        inRecovery: st?.inRecovery,
        replayLsn: st?.replayLsn ?? undefined,
        receiveLsn: st?.receiveLsn ?? undefined,
        // Without a recent primary observation, the configured flag stands in for sync_state.
        lastSyncState: lastSync ? lastSync.get(m.name) : s.replicas[m.name]?.sync ? 'sync' : 'async',
        fenced,
      })
    }
    return out
  }

  /** Old primary (fenced) back as a standby of the current primary. */
  async rejoin(name: string, opts: { allowReclone?: boolean } = {}, progress?: ProgressFn): Promise<{ name: string; method: actions.RejoinMethod; durationMs: number }> {
    const m = this.member(name)
    if (m.role === 'primary') throw SWITCHOVER_TARGET({ reason: `${name} is the primary` })
    const release = this.deps.locks.acquire('topology', `rejoin ${name}`)
    try {
      const t0 = Date.now()
      const p = this.primary()
      const env = await this.ensureReplicationRole(await this.env(), p)
      const { method } = await actions.rejoin(env, m.node, p.node, { noSync: this.deps.noSync ?? false, allowReclone: opts.allowReclone ?? true, ...(progress ? { progress } : {}) })
      await this.deps.registry.setRole(name, 'replica')
      const durationMs = Date.now() - t0
      this.publish('instance.rejoined', { name, primary: p.name, method, durationMs })
      return { name, method, durationMs }
    } finally {
      release()
    }
  }
}

/**
 * Client routing: a libpq multi-host URL over every instance of the flock. With
 * target_session_attrs=read-write libpq tries the hosts in order and keeps the one that
 * accepts writes, so clients find the new primary after a failover without any proxy.
 * `role: 'any'` lets reads land on any instance. No password in it (use PGPASSWORD/pgpass).
 */
export function flockUrl(opts: {
  members: Array<{ host: string; port: number; role: Role }>
  user: string
  database: string
  role: 'primary' | 'any'
  connectTimeoutS?: number
  /** Only for `db url --reveal`. */
  password?: string | undefined
}): string {
  const live = opts.members.filter((m) => m.role !== 'fenced')
  // Primary first: the common case connects on the first try.
  const ordered = [...live.filter((m) => m.role === 'primary'), ...live.filter((m) => m.role !== 'primary')]
  const hosts = ordered.map((m) => `${m.host}:${m.port}`).join(',')
  const params = new URLSearchParams({
    target_session_attrs: opts.role === 'primary' ? 'read-write' : 'any',
    connect_timeout: String(opts.connectTimeoutS ?? 2),
  })
  const auth = opts.password === undefined ? encodeURIComponent(opts.user) : `${encodeURIComponent(opts.user)}:${encodeURIComponent(opts.password)}`
  return `postgresql://${auth}@${hosts}/${encodeURIComponent(opts.database)}?${params.toString()}`
}
