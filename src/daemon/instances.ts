import type pg from 'pg'
import { z } from 'zod'
import type { MagflockConfig } from '../config/schema.js'
import { CORRUPT_STATE } from '../errors/index.js'
import { readJsonFile, writeJsonAtomicIfChanged } from '../platform/fs.js'
import type { OsUser } from '../platform/os-user.js'
import { INSTANCE_NAME_RULE, isInstanceName, type StateLayout } from '../platform/paths.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { stopInstance, writeInstanceConf, type InstanceSpec } from '../postgres/instance.js'
import type { RestartPolicy } from '../kernel/restart-policy.js'
import pgLib from 'pg'
import type { Logger } from 'pino'
import type { InstanceSupervisor } from '../postgres/supervisor.js'
import { SUPERUSER_SECRET } from '../secrets/names.js'
import { SECRET_MISSING } from '../secrets/errors.js'
import type { InstanceHandle, InstanceRegistry, SecretStore } from '../kernel/services.js'
import { INSTANCE_NOT_STANDALONE, INSTANCE_UNKNOWN, NO_PRIMARY } from '../kernel/errors.api.js'
import { promises as fsp } from 'node:fs'
import type { z as zod } from 'zod'
import type { InstanceStatus } from '../api/core.js'
import { writeServiceFile } from '../postgres/pgpass.js'

import { instanceSettings } from '../realtime/settings.js'
import { postgresNetworkSettings, remoteAddresses } from '../tls/postgres.js'
import type { FlockRole, InstanceRole } from '../postgres/instance-names.js'

/**
 * 'standalone': a restored copy (`backup restore --to-instance`). Supervised like the others,
 * but no part of the flock: never a failover candidate or target, not in flock URLs, not
 * replicating. `instance remove` takes it away.
 */
export { FIRST_INSTANCE, LEGACY_FIRST_INSTANCE, ROLE_WORDS, isFirstInstance, nextInstanceName, reservedInstanceName } from '../postgres/instance-names.js'
export type { FlockRole, InstanceRole } from '../postgres/instance-names.js'

/** `<state>/topology.json`: which instances the flock has and their roles (survives kernels). */
const Topology = z.object({
  instances: z.array(z.object({ name: z.string(), role: z.enum(['primary', 'replica', 'fenced', 'standalone']), port: z.number().int() })),
})
export type Topology = z.infer<typeof Topology>

/** Names from disk are input too: an invalid or repeated one makes the file corrupt (E_CORRUPT_STATE naming it). */
function checkInstanceNames(file: string, t: Topology): Topology {
  const seen = new Set<string>()
  for (const i of t.instances) {
    if (!isInstanceName(i.name)) {
      throw CORRUPT_STATE({ file, reason: `instance name "${i.name.slice(0, 80)}" is not valid (${INSTANCE_NAME_RULE})` })
    }
    if (seen.has(i.name)) throw CORRUPT_STATE({ file, reason: `instance "${i.name}" is listed twice` })
    seen.add(i.name)
  }
  return t
}

interface Entry {
  spec: InstanceSpec
  role: InstanceRole
  supervisor: InstanceSupervisor | undefined
}

/** The kernel's registry of the flock's instances and their supervisors. */
export class FlockInstances implements InstanceRegistry {
  /**
   * What stopping the postgres component does to the instances: false stops them (down,
   * SIGTERM), true leaves them serving for the next kernel (`kernel stop`), 'adopted' stops
   * only those this kernel started (a boot that fails must not take down a database that was
   * already serving before it).
   */
  keepRunningOnStop: boolean | 'adopted' = 'adopted'
  private readonly entries = new Map<string, Entry>()
  /**
   * One restart policy object shared by every instance supervisor (they read it at each
   * decision), so `config reload` of kernel.restart.* applies without restarting anything.
   */
  readonly restartPolicy: RestartPolicy = { policy: 'always' }

  constructor(
    private readonly layout: StateLayout,
    private readonly secrets: SecretStore,
    private readonly config: () => MagflockConfig,
    private readonly log?: Logger,
  ) {}

  specFor(name: string, port: number, bins: PgBinaries, runAs: OsUser | undefined): InstanceSpec {
    const cfg = this.config()
    return {
      name,
      instanceDir: this.layout.instanceDir(name),
      dataDir: this.layout.dataDir(name),
      logFile: this.layout.instanceLog(name),
      host: '127.0.0.1',
      port,
      superuser: cfg.postgres.superuser,
      bins,
      runAs,
      settings: { ...postgresNetworkSettings(cfg, this.layout.root), ...instanceSettings(cfg) },
      remoteHba: remoteAddresses(cfg),
      startTimeoutMs: cfg.postgres.startTimeoutSeconds * 1000,
      ...(this.log ? { log: this.log.child({ instance: name }) } : {}),
    }
  }

  /** Copies kernel.restart.* into the shared policy object. */
  syncRestartPolicy(cfg: MagflockConfig): RestartPolicy {
    const r = cfg.kernel.restart
    Object.assign(this.restartPolicy, {
      policy: 'always',
      maxRestarts: r.maxRestarts,
      windowMs: r.windowSeconds * 1000,
      initialBackoffMs: r.initialBackoffMs,
      maxBackoffMs: r.maxBackoffMs,
    })
    return this.restartPolicy
  }

  /**
   * Applies a reloaded config to running instances: the restart policy, and reloadable
   * postgres.settings (rewrites magflock.conf, then pg_reload_conf() on each instance).
   * Settings that need a server restart are written too and take effect at the next start.
   */
  async applyLiveConfig(next: MagflockConfig, appliedKeys: string[]): Promise<void> {
    this.syncRestartPolicy(next)
    if (!appliedKeys.some((k) => k.startsWith('postgres.settings.'))) return
    for (const e of this.entries.values()) {
      e.spec.settings = { ...postgresNetworkSettings(next, this.layout.root), ...instanceSettings(next) }
      await writeInstanceConf(e.spec)
      const c = new pgLib.Client(await this.handle(e).connection())
      await c.connect()
      try {
        await c.query('select pg_reload_conf()')
      } finally {
        await c.end()
      }
    }
  }

  async readTopology(): Promise<Topology | undefined> {
    const file = `${this.layout.root}/topology.json`
    return readJsonFile(file, (v) => checkInstanceNames(file, Topology.parse(v)))
  }

  async saveTopology(): Promise<void> {
    const t: Topology = {
      instances: [...this.entries.values()].map((e) => ({ name: e.spec.name, role: e.role, port: e.spec.port })),
    }
    await writeJsonAtomicIfChanged(`${this.layout.root}/topology.json`, t, 0o600)
    // The `magflock` libpq service follows the topology: primary first, then the replicas.
    const order = { primary: 0, replica: 1 } as Record<string, number>
    const members = [...this.entries.values()].filter((e) => e.role in order).sort((a, b) => order[a.role]! - order[b.role]!)
    if (members.length > 0) {
      const cfg = this.config()
      await writeServiceFile(this.layout.pgService, {
        members: members.map((e) => ({ host: e.spec.host, port: e.spec.port })),
        user: cfg.postgres.superuser,
        database: cfg.postgres.database,
        passfile: this.layout.pgpass,
      })
    }
  }

  add(spec: InstanceSpec, role: InstanceRole, supervisor: InstanceSupervisor | undefined): void {
    this.entries.set(spec.name, { spec, role, supervisor })
  }

  remove(name: string): void {
    this.entries.delete(name)
  }

  /**
   * `instance remove`: stops a standalone instance (fast shutdown), forgets it and deletes its
   * directory (`<state>/instances/<name>`), or keeps the directory with keepData. Refuses any
   * other role, so neither the primary nor a replica can go this way.
   */
  async removeStandalone(name: string, keepData: boolean): Promise<{ name: string; dataDir: string; dataKept: boolean }> {
    const e = this.entries.get(name)
    if (!e) throw INSTANCE_UNKNOWN({ name })
    if (e.role !== 'standalone') throw INSTANCE_NOT_STANDALONE({ name, role: e.role })
    await e.supervisor?.stop({ keepRunning: false })
    // A supervisor that never got it running holds no process; stop whatever runs there anyway.
    await stopInstance(e.spec, 'fast')
    this.entries.delete(name)
    await this.saveTopology()
    if (!keepData) await fsp.rm(e.spec.instanceDir, { recursive: true, force: true })
    return { name, dataDir: e.spec.dataDir, dataKept: keepData }
  }

  setRole(name: string, role: InstanceRole): void {
    const e = this.entries.get(name)
    if (e) e.role = role
  }

  supervisor(name: string): InstanceSupervisor | undefined {
    return this.entries.get(name)?.supervisor
  }

  supervisors(): InstanceSupervisor[] {
    return [...this.entries.values()].flatMap((e) => (e.supervisor ? [e.supervisor] : []))
  }

  private handle(e: Entry): InstanceHandle {
    const cfg = this.config()
    return {
      name: e.spec.name,
      role: e.role,
      port: e.spec.port,
      host: e.spec.host,
      dataDir: e.spec.dataDir,
      connection: async (database?: string): Promise<pg.ClientConfig> => ({
        host: e.spec.host,
        port: e.spec.port,
        user: cfg.postgres.superuser,
        // A missing superuser password is a clear error, never an empty password and an auth failure.
        password: (await this.secrets.get(SUPERUSER_SECRET)) ?? missingSecret(SUPERUSER_SECRET, 'the superuser password'),
        database: database ?? cfg.postgres.database,
        application_name: 'magflock-kernel',
      }),
    }
  }

  list(): InstanceHandle[] {
    return [...this.entries.values()].map((e) => this.handle(e))
  }

  /** The flock proper (primary, replicas, fenced): what replication and flock URLs see. */
  members(): Array<InstanceHandle & { role: FlockRole }> {
    return this.list().filter((h): h is InstanceHandle & { role: FlockRole } => h.role !== 'standalone')
  }

  get(name: string): InstanceHandle | undefined {
    const e = this.entries.get(name)
    return e ? this.handle(e) : undefined
  }

  primary(): InstanceHandle {
    const e = [...this.entries.values()].find((x) => x.role === 'primary')
    if (!e) throw NO_PRIMARY()
    return this.handle(e)
  }

  statuses(): Array<zod.infer<typeof InstanceStatus>> {
    const cfg = this.config()
    return [...this.entries.values()].map((e) => {
      const s = e.supervisor?.status()
      return {
        name: e.spec.name,
        role: e.role,
        // A fenced instance the kernel booted without a supervisor is stopped on purpose.
        state: s?.state ?? (e.role === 'fenced' ? 'stopped' : 'unknown'),
        pid: s?.pid ?? null,
        port: e.spec.port,
        host: e.spec.host,
        dataDir: e.spec.dataDir,
        user: cfg.postgres.superuser,
        database: cfg.postgres.database,
        url: `postgres://${encodeURIComponent(cfg.postgres.superuser)}@${e.spec.host}:${e.spec.port}/${encodeURIComponent(cfg.postgres.database)}`,
        adopted: s?.adopted ?? false,
        restarts: s?.restarts ?? 0,
      }
    })
  }
}

function missingSecret(name: string, purpose: string): never {
  throw SECRET_MISSING({ name, purpose })
}
