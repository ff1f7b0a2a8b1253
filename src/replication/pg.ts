import { promises as fsp } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import type { OsUser } from '../platform/os-user.js'
import { writeFileAtomic } from '../platform/fs.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { pgControl, STOP_SIGNALS } from '../postgres/control.js'
import { isOurPostmaster, isProcessAliveSync, killProcessesInDataDir, readPostmasterPid, removeStaleSocketLock } from '../postgres/pidfile.js'
import { replicationSslConninfo, replicationSslEnv } from '../tls/postgres.js'

/**
 * The replication area's narrow adapter to Postgres: SQL as small functions, pg_ctl, and the
 * files a standby needs (standby.signal, postgresql.auto.conf, a passfile). Everything takes
 * explicit inputs (binaries, OS user, connection) so it runs the same in the kernel and in
 * tests against real Postgres.
 */

/** One Postgres instance as the replication code sees it. */
export interface PgNode {
  name: string
  host: string
  port: number
  instanceDir: string
  dataDir: string
  logFile: string
}

export interface ReplicationEnv {
  bins: PgBinaries
  runAs: OsUser | undefined
  superuser: string
  /** The superuser password (MagFlock's own SQL); used through PGPASSWORD, never argv. */
  password: string
  /**
   * The replication role standbys, clones and rewinds connect as (role.ts). Undefined: a flock
   * from before it existed, or a test; then the superuser stands in, as it used to.
   */
  replicator?: { user: string; password: string } | undefined
  lifecycle: InstanceLifecycle
  log?: (msg: string, fields?: Record<string, unknown>) => void
  /**
   * The flock CA (PEM) for MagFlock's own SQL to a peer on another host (a node of a
   * multi-host flock): such connections then use TLS with the peer's certificate verified.
   */
  peerCa?: string | undefined
}

/**
 * How actions start and stop instances. The default drives pg_ctl directly; inside the
 * kernel the lead passes one that goes through the instance supervisor, so that a planned
 * stop is not mistaken for a crash (pause supervision → stop → …) and a started standby is
 * supervised.
 */
export interface InstanceLifecycle {
  start(node: PgNode): Promise<void>
  /**
   * `pollMs`: signal the postmaster directly and poll its exit at that interval instead of
   * `pg_ctl -w`, whose wait loop only looks every 100 ms (switchover counts every one).
   */
  stop(node: PgNode, mode: 'fast' | 'immediate', opts?: { pollMs?: number }): Promise<void>
}

export function pgCtlLifecycle(bins: PgBinaries, runAs: OsUser | undefined, timeoutS = 60): InstanceLifecycle {
  const control = pgControl(bins, runAs)
  return {
    async start(node) {
      // A postmaster.pid naming a dead (or zombie) process, e.g. just after a fence's SIGKILL:
      // Postgres checks that PID with kill(0), which a zombie passes, and would refuse to start
      // ("lock file postmaster.pid already exists"). A live postmaster of this data dir keeps it.
      const pid = await readPostmasterPid(node.dataDir).catch(() => undefined)
      // Orphaned backends of that dead postmaster go first: with them alive, the lock file (and
      // the shared-memory interlock it names) must stay.
      if (pid && !(await isOurPostmaster(pid.pid, node.dataDir))) {
        await killProcessesInDataDir(node.dataDir)
        await fsp.rm(path.join(node.dataDir, 'postmaster.pid'), { force: true })
      }
      await removeStaleSocketLock(socketDir(node), node.port)
      await control.pgCtlStart({ dataDir: node.dataDir, logFile: node.logFile, timeoutS, timeoutMs: (timeoutS + 5) * 1000 })
    },
    async stop(node, mode, opts) {
      const pid = await readPostmasterPid(node.dataDir).catch(() => undefined)
      // A dead postmaster (kill -9) needs no pg_ctl; its orphans are killInstance's job.
      if (!pid || !(await isOurPostmaster(pid.pid, node.dataDir))) return
      if (opts?.pollMs) {
        // pg_ctl stop is kill(postmaster, SIGINT|SIGQUIT) plus a 100 ms poll; the same signal
        // with a finer poll. The postmaster is gone once its last child has exited and
        // postmaster.pid is removed, i.e. after the shutdown checkpoint is written.
        process.kill(pid.pid, STOP_SIGNALS[mode])
        const deadline = Date.now() + timeoutS * 1000
        while (isProcessAliveSync(pid.pid)) {
          if (Date.now() > deadline) throw new Error(`${node.name} (pid ${pid.pid}) did not stop within ${timeoutS} s`)
          await sleep(opts.pollMs)
        }
        return
      }
      await control.pgCtlStop({ dataDir: node.dataDir, mode, timeoutS, timeoutMs: (timeoutS + 5) * 1000 })
    },
  }
}

export function clientConfig(env: Pick<ReplicationEnv, 'superuser' | 'password' | 'peerCa'>, node: Pick<PgNode, 'host' | 'port'>, database = 'postgres'): pg.ClientConfig {
  const remote = env.peerCa !== undefined && node.host !== '127.0.0.1' && node.host !== 'localhost'
  return {
    ...(remote ? { ssl: { ca: env.peerCa, rejectUnauthorized: true } } : {}),
    host: node.host,
    port: node.port,
    user: env.superuser,
    password: env.password,
    database,
    connectionTimeoutMillis: 2000,
    application_name: 'magflock-replication',
  }
}

export async function withClient<T>(cfg: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(cfg)
  // A server that dies under us emits 'error' on an idle client; without a listener that is an uncaught exception.
  c.on('error', () => undefined)
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => undefined)
  }
}

export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(cfg: pg.ClientConfig, text: string, params: unknown[] = []): Promise<R[]> {
  return withClient(cfg, async (c) => (await c.query<R>(text, params)).rows)
}

/** Quotes an identifier for SQL and synchronous_standby_names. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** A postgresql.conf string literal. */
export function confString(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`
}

export function passfilePath(node: Pick<PgNode, 'instanceDir'>): string {
  return path.join(node.instanceDir, 'replication.pgpass')
}

/**
 * primary_conninfo for a standby of `primary`. The password lives in a 0600 passfile owned by
 * the Postgres OS user (as with Patroni's pgpass), so it never appears in postgresql.auto.conf,
 * pg_stat_wal_receiver or a log line.
 */
export function primaryConninfo(env: Pick<ReplicationEnv, 'superuser' | 'replicator'>, primary: Pick<PgNode, 'host' | 'port'>, standby: PgNode): string {
  return [
    `host=${primary.host}`,
    `port=${primary.port}`,
    `user=${env.replicator?.user ?? env.superuser}`,
    `passfile=${passfilePath(standby)}`,
    `application_name=${standby.name}`,
    'connect_timeout=2',
    'keepalives_idle=2',
    // A peer beyond 127.0.0.1 is reached over TLS, verify-full against the flock CA.
    ...replicationSslConninfo(primary.host, standby.instanceDir),
  ].join(' ')
}

/** Who standbys, pg_basebackup and pg_rewind log in as: the replication role, else the superuser. */
export function replicationLogin(env: Pick<ReplicationEnv, 'superuser' | 'password' | 'replicator'>): { user: string; password: string } {
  return env.replicator ?? { user: env.superuser, password: env.password }
}

/** Environment and redaction for a child that logs in as the replication role (never argv). */
export function replicationChild(env: ReplicationEnv, appName?: string, peer?: { host: string; local: Pick<PgNode, 'instanceDir'> }): { env: Record<string, string>; secrets: string[] } {
  const login = replicationLogin(env)
  const ssl = peer ? replicationSslEnv(peer.host, peer.local.instanceDir) : {}
  return { env: { PGPASSWORD: login.password, ...(appName ? { PGAPPNAME: appName } : {}), ...ssl }, secrets: [login.password, env.password] }
}

export async function writePassfile(env: ReplicationEnv, node: PgNode): Promise<void> {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:')
  const login = replicationLogin(env)
  await writeFileAtomic(passfilePath(node), `*:*:*:${esc(login.user)}:${esc(login.password)}\n`, {
    mode: 0o600,
    ...(env.runAs ? { uid: env.runAs.uid, gid: env.runAs.gid } : {}),
  })
}

/** Settings that belong to one instance and must not be inherited from a cloned primary. */
const PER_INSTANCE = new Set([
  'port',
  'listen_addresses',
  'unix_socket_directories',
  'primary_conninfo',
  'primary_slot_name',
  'synchronous_standby_names',
  'restore_command',
  'recovery_target_timeline',
])

/**
 * Rewrites postgresql.auto.conf: keeps the settings that are not per-instance (ALTER SYSTEM
 * of the operator) and sets ours. A clone carries the primary's port and, worse, its
 * synchronous_standby_names: a promoted standby that waits for itself hangs every commit.
 */
export async function writeAutoConf(env: ReplicationEnv, dataDir: string, settings: Record<string, string | number>): Promise<void> {
  const file = path.join(dataDir, 'postgresql.auto.conf')
  let old = ''
  try {
    old = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const keep = old.split('\n').filter((line) => {
    const m = /^\s*([A-Za-z_.]+)\s*=/.exec(line)
    return !m || (!PER_INSTANCE.has(m[1] as string) && !(m[1] as string in settings))
  })
  const lines = keep.filter((l, i) => l.trim() !== '' || i < keep.length - 1)
  for (const [k, v] of Object.entries(settings)) lines.push(`${k} = ${typeof v === 'number' ? v : confString(v)}`)
  await writeFileAtomic(file, lines.join('\n') + '\n', { mode: 0o600, ...(env.runAs ? { uid: env.runAs.uid, gid: env.runAs.gid } : {}) })
}

export async function writeStandbySignal(env: ReplicationEnv, dataDir: string): Promise<void> {
  await writeFileAtomic(path.join(dataDir, 'standby.signal'), '', { mode: 0o600, ...(env.runAs ? { uid: env.runAs.uid, gid: env.runAs.gid } : {}) })
}

/** Socket dir for a node: its instance dir when the socket path fits, else TCP only. */
export function socketDir(node: PgNode): string {
  return Buffer.byteLength(path.join(node.instanceDir, `.s.PGSQL.${node.port}.lock`)) < 100 ? node.instanceDir : ''
}

/** The standby settings of `standby` following `primary`. */
export function standbySettings(env: ReplicationEnv, primary: PgNode, standby: PgNode, slot: string): Record<string, string | number> {
  return {
    port: standby.port,
    listen_addresses: standby.host,
    unix_socket_directories: socketDir(standby),
    primary_conninfo: primaryConninfo(env, primary, standby),
    primary_slot_name: slot,
    synchronous_standby_names: '',
    recovery_target_timeline: 'latest',
    // PostgreSQL's default (5 s) is how long the startup process sleeps after its WAL receiver
    // lost the primary; a promote request arriving in that instant sat out the whole sleep
    // (switchover promotions of 5.1 s in the benchmark). Retrying every 250 ms on loopback is
    // cheap, bounds that stall, and lets repointed standbys find a new primary sooner.
    wal_retrieve_retry_interval: '250ms',
  }
}

export async function chownTree(env: ReplicationEnv, dir: string): Promise<void> {
  if (!env.runAs) return
  await fsp.chown(dir, env.runAs.uid, env.runAs.gid)
}

export async function createSlot(cfg: pg.ClientConfig, slot: string): Promise<void> {
  await sql(
    cfg,
    `select pg_create_physical_replication_slot($1, true) where not exists (select 1 from pg_replication_slots where slot_name = $1)`,
    [slot],
  )
}

export async function dropSlot(cfg: pg.ClientConfig, slot: string): Promise<boolean> {
  // An active slot cannot be dropped; its walsender is terminated first.
  const rows = await sql<{ dropped: boolean }>(
    cfg,
    `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null`,
    [slot],
  )
  void rows
  for (let i = 0; i < 50; i++) {
    try {
      const r = await sql<{ n: number }>(cfg, `select count(pg_drop_replication_slot(slot_name))::int as n from pg_replication_slots where slot_name = $1`, [slot])
      return (r[0]?.n ?? 0) > 0
    } catch (err) {
      // "replication slot is active": the walsender has not exited yet.
      if (!/is active/.test((err as Error).message)) throw err
      await sleep(100)
    }
  }
  return false
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Stops every process of an instance for certain: SIGKILL of every Postgres process working
 * in its data directory (the postmaster, its children, and backends orphaned by a postmaster
 * killed with SIGKILL, which could otherwise still commit a transaction already in flight),
 * then the lifecycle's stop (pauses its supervisor; pg_ctl only if a postmaster runs again),
 * then the same sweep once more. Killing first matters: a supervisor's restart attempt in
 * flight waits for the very postmaster we are about to kill, and the lifecycle's stop waits
 * for that attempt.
 */
export async function killInstance(env: ReplicationEnv, node: PgNode): Promise<number[]> {
  const killed = await killProcessesInDataDir(node.dataDir)
  await env.lifecycle.stop(node, 'immediate').catch(() => undefined)
  for (const pid of await killProcessesInDataDir(node.dataDir)) if (!killed.includes(pid)) killed.push(pid)
  return killed
}
