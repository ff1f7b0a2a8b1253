import { randomBytes } from 'node:crypto'
import { promises as fsp, type Stats } from 'node:fs'
import path from 'node:path'
import { pingPostgres } from './ping.js'
import type { Options } from 'execa'
import type { Logger } from 'pino'
import { PORT_IN_USE } from '../errors/index.js'
import { exists, fsyncDir, writeFileAtomic } from '../platform/fs.js'
import type { OsUser } from '../platform/os-user.js'
import { isPortFree } from '../platform/ports.js'
import { run, type spawnLong } from '../platform/process.js'
import { pgControl, postmasterBinary, STOP_SIGNALS, type StopMode } from './control.js'
import type { PgBinaries } from './binaries.js'
import { renderMagflockConf, renderPgHba, socketDirFor, withInclude, type SettingValue } from './conf.js'
import { withRemoteHba } from '../tls/postgres.js'
import {
  INSTANCE_ALREADY_INITIALIZED,
  INSTANCE_DIR_INACCESSIBLE,
  INSTANCE_INIT_FAILED,
  INSTANCE_NOT_INITIALIZED,
  INSTANCE_START_FAILED,
  INSTANCE_START_TIMEOUT,
  INSTANCE_STOP_TIMEOUT,
} from './errors.js'
import { sameRunAs, stopEarly, takeEarlyChild } from './early-start.js'
import { isOurPostmaster, isProcessAlive, killProcessesInDataDir, postmasterPidPath, processesWithArg, readPostmasterPid, removeStaleSocketLock } from './pidfile.js'

/**
 * One Postgres instance on this host: its data directory, how it is initialised, started,
 * adopted and stopped. The process model (docs/postgres.md):
 *
 *  - `postgres -D <data>` runs detached, in its own session and process group, as the
 *    unprivileged OS user, with stdout/stderr appended to <instance>/postgres.log. It outlives
 *    the kernel; the next kernel re-adopts it from postmaster.pid without restarting it.
 *  - A PID from postmaster.pid is trusted only after isOurPostmaster() (PIDs are recycled).
 *  - initdb never runs in place: it fills `<data>.initializing`, which is renamed to `<data>`
 *    only when complete, so a crash mid-initdb can never leave a data dir a start would use.
 */
export interface InstanceSpec {
  name: string
  instanceDir: string
  dataDir: string
  logFile: string
  host: '127.0.0.1'
  port: number
  superuser: string
  bins: PgBinaries
  runAs: OsUser | undefined
  settings?: Record<string, SettingValue>
  /** Addresses beyond 127.0.0.1 Postgres listens on: a managed hostssl block in pg_hba (src/tls/postgres.ts). */
  remoteHba?: string[]
  startTimeoutMs?: number
  /** Config key named in E_PORT_IN_USE's hint (default postgres.port; replicas: replication.basePort). */
  portConfigKey?: string
  log?: Logger
}

export type { StopMode } from './control.js'
export type InstanceState = 'absent' | 'initializing-leftover' | 'ready'
export type ReadyState = 'running' | 'rejecting' | 'no_response'

export interface PostgresExit {
  code: number | null
  signal: string | null
}

export interface PostgresProcess {
  pid: number
  /** True when found running (postmaster.pid) rather than spawned by this call. */
  adopted: boolean
  /** Resolves when the postmaster dies (for adopted ones: kill(pid, 0) polled every 100 ms). */
  exited: Promise<PostgresExit>
  /** SIGTERM (smart) / SIGINT (fast) / SIGQUIT (immediate), then waits for exit, bounded. */
  stop(mode: StopMode, timeoutMs?: number): Promise<void>
  /** Stop watching the process (it keeps running); `exited` then never resolves. */
  detach(): void
}

const SIGNALS = STOP_SIGNALS
const STOP_TIMEOUT_MS: Record<StopMode, number> = { smart: 60_000, fast: 60_000, immediate: 15_000 }
const DEFAULT_START_TIMEOUT_MS = 60_000
const POLL_MS = 50
const FAST_POLL_MS = 10
const FAST_POLL_FOR_MS = 2000
/** The wire check without the pid file saying ready (odd builds): at this pace. */
const PROBE_EVERY_MS = 500
// A dead adopted postmaster's orphans may still serve clients until we notice: poll often.
const ADOPTED_POLL_MS = 100

export function initializingDir(spec: Pick<InstanceSpec, 'dataDir'>): string {
  return `${spec.dataDir}.initializing`
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) return false
    await sleep(POLL_MS)
  }
  return true
}

/**
 * 'ready' when the data dir holds a cluster (PG_VERSION is written by initdb and copied by
 * pg_basebackup); 'initializing-leftover' when only an interrupted initdb's directory exists.
 */
export async function instanceState(spec: Pick<InstanceSpec, 'dataDir'>): Promise<InstanceState> {
  if (await exists(path.join(spec.dataDir, 'PG_VERSION'))) return 'ready'
  if (await exists(initializingDir(spec))) return 'initializing-leftover'
  return 'absent'
}

async function chownTo(p: string, runAs: OsUser | undefined): Promise<void> {
  if (runAs) await fsp.chown(p, runAs.uid, runAs.gid)
}

/**
 * Postgres runs as `runAs` and must traverse every parent of its data dir. Checked up front so
 * the operator reads "cannot reach /root" instead of initdb's "could not change directory".
 */
async function assertTraversable(dir: string, runAs: OsUser | undefined): Promise<void> {
  if (!runAs) return
  let cur = path.resolve(dir)
  for (;;) {
    let st: Stats | undefined
    try {
      st = await fsp.stat(cur)
    } catch {
      st = undefined // not created yet: mkdir will make it 0755 or we chown it
    }
    if (st) {
      const ok =
        (st.mode & 0o001) !== 0 ||
        (st.uid === runAs.uid && (st.mode & 0o100) !== 0) ||
        (st.gid === runAs.gid && (st.mode & 0o010) !== 0)
      if (!ok) throw INSTANCE_DIR_INACCESSIBLE({ dir: cur, user: runAs.name })
    }
    const parent = path.dirname(cur)
    if (parent === cur) return
    cur = parent
  }
}

/** The instance dir holds data/, postgres.log and the Unix socket; it belongs to runAs, 0700. */
async function ensureInstanceDir(spec: InstanceSpec): Promise<void> {
  // Parents get the default mode (0755 under the usual umask): Postgres must traverse them.
  await fsp.mkdir(path.dirname(spec.instanceDir), { recursive: true })
  await assertTraversable(path.dirname(spec.instanceDir), spec.runAs)
  await fsp.mkdir(spec.instanceDir, { recursive: true, mode: 0o700 })
  await fsp.chmod(spec.instanceDir, 0o700)
  await chownTo(spec.instanceDir, spec.runAs)
}

async function writeOwned(spec: InstanceSpec, file: string, text: string): Promise<void> {
  await writeFileAtomic(file, text, { mode: 0o600, ...(spec.runAs ? { uid: spec.runAs.uid, gid: spec.runAs.gid } : {}) })
}

/**
 * Writes magflock.conf (and the include line) into a data dir; called by init and every start.
 * Returns whether any file changed (an early postmaster read the old ones: takeEarlyPostmaster).
 */
export async function writeInstanceConf(spec: InstanceSpec, dataDir = spec.dataDir): Promise<boolean> {
  let changed = false
  const conf = path.join(dataDir, 'postgresql.conf')
  const current = (await exists(conf)) ? await fsp.readFile(conf, 'utf8') : ''
  const next = withInclude(current)
  if (next !== current) {
    await writeOwned(spec, conf, next)
    changed = true
  }
  // Every start (a restart after a crash too) comes here; an unchanged file is not rewritten,
  // which saves two fsyncs on the restart and failover path.
  const file = path.join(dataDir, 'magflock.conf')
  const text = renderMagflockConf({ port: spec.port, instanceDir: spec.instanceDir, settings: spec.settings })
  const old = await fsp.readFile(file, 'utf8').catch(() => undefined)
  if (old !== text) {
    await writeOwned(spec, file, text)
    changed = true
  }
  if (spec.remoteHba) {
    const hba = path.join(dataDir, 'pg_hba.conf')
    const cur = await fsp.readFile(hba, 'utf8').catch(() => undefined)
    if (cur !== undefined) {
      const nextHba = withRemoteHba(cur, spec.remoteHba)
      if (nextHba !== cur) {
        await writeOwned(spec, hba, nextHba)
        changed = true
      }
    }
  }
  return changed
}

/**
 * initdb with checksums and SCRAM, MagFlock's settings and pg_hba, then an atomic rename into
 * place. The password reaches initdb through a 0600 file owned by runAs, deleted right after;
 * it is never in argv or a log line. A leftover `<data>.initializing` is removed first.
 */
export async function initInstance(spec: InstanceSpec, password: string): Promise<void> {
  if ((await instanceState(spec)) === 'ready') throw INSTANCE_ALREADY_INITIALIZED({ instance: spec.name, dataDir: spec.dataDir })
  // A bad postgres.settings key fails here, before initdb, with its own code.
  renderMagflockConf({ port: spec.port, instanceDir: spec.instanceDir, settings: spec.settings })
  await ensureInstanceDir(spec)
  const initDir = initializingDir(spec)
  if (await exists(initDir)) {
    spec.log?.warn({ instance: spec.name, dir: initDir }, 'removing the leftover of an interrupted initdb')
    // An initdb orphaned by a dead kernel may still be writing there.
    for (const pid of await processesWithArg(initDir)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await until(async () => (await processesWithArg(initDir)).length === 0, 5_000)
    await fsp.rm(initDir, { recursive: true, force: true })
  }
  await fsp.mkdir(initDir, { mode: 0o700 })
  await chownTo(initDir, spec.runAs)
  const pwfile = path.join(spec.instanceDir, `.pwfile-${randomBytes(6).toString('hex')}`)
  try {
    await writeOwned(spec, pwfile, password)
    try {
      await run(
        spec.bins.tool('initdb'),
        ['-D', initDir, '--data-checksums', '--auth=scram-sha-256', '-U', spec.superuser, `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C'],
        {
          runAs: spec.runAs,
          secrets: [password],
          timeoutMs: 300_000,
          ...(spec.log ? { log: (msg: string, fields: Record<string, unknown>) => spec.log?.debug(fields, msg) } : {}),
        },
      )
    } finally {
      await fsp.rm(pwfile, { force: true })
    }
    await writeInstanceConf(spec, initDir)
    await writeOwned(spec, path.join(initDir, 'pg_hba.conf'), renderPgHba(spec.superuser))
    // initdb fsyncs what it wrote and writeFileAtomic fsyncs ours; make the directory entries
    // durable, then publish the data dir in one rename.
    await fsyncDir(initDir)
    // An empty data dir (made by hand or by a tool) may be replaced; a non-empty one makes rename fail.
    await fsp.rmdir(spec.dataDir).catch(() => undefined)
    await fsp.rename(initDir, spec.dataDir)
    await fsyncDir(path.dirname(spec.dataDir))
    await writeOwned(
      spec,
      path.join(spec.dataDir, 'magflock.json'),
      JSON.stringify({ initializedAt: new Date().toISOString(), version: spec.bins.version }, null, 2) + '\n',
    )
  } catch (err) {
    await fsp.rm(initDir, { recursive: true, force: true }).catch(() => undefined)
    const reason = err instanceof Error ? err.message.split(password).join('***') : String(err)
    throw INSTANCE_INIT_FAILED({ instance: spec.name, reason }, { cause: err })
  }
  spec.log?.info({ instance: spec.name, dataDir: spec.dataDir, version: spec.bins.version }, 'initialised data directory')
}

/**
 * pg_isready's check, in process (src/postgres/ping.ts): a StartupMessage and the first reply.
 * 'running' when the server accepts connections (or refuses this login for any other reason
 * than starting up), 'rejecting' when it answers 57P03 (starting, stopping, recovering),
 * 'no_response' when nothing answers within 2 s: pg_isready's exit codes 0, 1 and 2. The same
 * answer without an exec per call (spawning the binary cost ~12 ms of CPU on every boot).
 */
export async function pgIsReady(spec: Pick<InstanceSpec, 'host' | 'port' | 'superuser'>, port = spec.port): Promise<ReadyState> {
  return pingPostgres(spec.host, port, spec.superuser)
}

/** The last lines Postgres logged, from `fromByte` on (only this start's lines). */
export async function logTail(logFile: string, fromByte = 0, lines = 15): Promise<string> {
  try {
    const fh = await fsp.open(logFile, 'r')
    try {
      const { size } = await fh.stat()
      const start = Math.max(fromByte, size - 16_384)
      const buf = Buffer.alloc(Math.max(0, size - start))
      await fh.read(buf, 0, buf.length, start)
      return buf.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } finally {
      await fh.close()
    }
  } catch {
    return ''
  }
}

async function signalAndWait(spec: InstanceSpec, pid: number, exited: Promise<unknown>, mode: StopMode, timeoutMs?: number): Promise<void> {
  try {
    process.kill(pid, SIGNALS[mode])
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return
    throw err
  }
  const ms = timeoutMs ?? STOP_TIMEOUT_MS[mode]
  let timer: NodeJS.Timeout | undefined
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), ms)
    }),
  ])
  clearTimeout(timer)
  if (timedOut) throw INSTANCE_STOP_TIMEOUT({ instance: spec.name, pid, mode, ms })
  spec.log?.info({ instance: spec.name, pid, mode }, 'postgres stopped')
}

/** A handle on a postmaster we did not spawn (or no longer hold the child of). */
function adoptedHandle(spec: InstanceSpec, pid: number): PostgresProcess {
  let timer: NodeJS.Timeout | undefined
  let checking = false
  const exited = new Promise<PostgresExit>((resolve) => {
    timer = setInterval(() => {
      if (checking) return
      checking = true
      void isProcessAlive(pid)
        .then((alive) => {
          if (!alive) {
            clearInterval(timer)
            resolve({ code: null, signal: null })
          }
        })
        .finally(() => {
          checking = false
        })
    }, ADOPTED_POLL_MS)
    // Supervision must not keep a CLI or test process alive on its own.
    timer.unref()
  })
  return {
    pid,
    adopted: true,
    exited,
    stop: (mode, timeoutMs) => signalAndWait(spec, pid, exited, mode, timeoutMs),
    detach: () => clearInterval(timer),
  }
}

/**
 * Backends orphaned by a postmaster killed with SIGKILL keep the old shared memory attached;
 * a new postmaster refuses to start beside them ("pre-existing shared memory block is still in
 * use"), and one still serving a client could acknowledge a commit. They get SIGKILL.
 */
async function clearOrphans(spec: InstanceSpec): Promise<void> {
  const pids = await killProcessesInDataDir(spec.dataDir)
  if (pids.length > 0) spec.log?.warn({ instance: spec.name, pids }, 'killed backends left behind by a dead postmaster')
}

async function waitReady(spec: InstanceSpec, proc: PostgresProcess, dead: () => boolean, logFrom: number, port: number): Promise<void> {
  const ms = spec.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
  const t0 = Date.now()
  const deadline = t0 + ms
  let probed = t0
  for (;;) {
    if (dead()) {
      throw INSTANCE_START_FAILED({ instance: spec.name, reason: 'postgres exited during startup', logTail: await logTail(spec.logFile, logFrom) })
    }
    // postmaster.pid's status line turns "ready" (or "standby") once connections are accepted;
    // reading it is cheaper than the wire check, which confirms (and covers odd builds).
    const pf = await readPostmasterPid(spec.dataDir).catch(() => undefined)
    const says = pf?.pid === proc.pid && (pf.status === 'ready' || pf.status === 'standby')
    const probeDue = Date.now() - probed >= PROBE_EVERY_MS
    if (probeDue) probed = Date.now()
    if ((says || probeDue) && (await pgIsReady(spec, port)) === 'running') return
    if (Date.now() >= deadline) {
      throw INSTANCE_START_TIMEOUT({ instance: spec.name, ms, logTail: await logTail(spec.logFile, logFrom) })
    }
    // A warm start is ready within ~100 ms: read the (tiny) pid file often at first, so
    // `magflock up` does not wait out a 50 ms tick; crash recovery gets the slower pace.
    await sleep(Date.now() - t0 < FAST_POLL_FOR_MS ? FAST_POLL_MS : POLL_MS)
  }
}

/**
 * The running postmaster of this data dir, when postmaster.pid names a live process that
 * is ours and it answers; undefined otherwise (nothing is changed).
 */
export async function adoptInstance(spec: InstanceSpec): Promise<PostgresProcess | undefined> {
  const pf = await readPostmasterPid(spec.dataDir)
  if (!pf || !(await isOurPostmaster(pf.pid, spec.dataDir))) return undefined
  if ((await pgIsReady(spec, pf.port || spec.port)) !== 'running') return undefined
  if (pf.port && pf.port !== spec.port) {
    spec.log?.warn({ instance: spec.name, running: pf.port, configured: spec.port }, 'adopted instance listens on another port than configured; restart it to apply')
  }
  spec.log?.info({ instance: spec.name, pid: pf.pid }, 'adopted running postgres')
  return adoptedHandle(spec, pf.pid)
}

/**
 * Starts the instance, or adopts it when its postmaster is already running. Refuses with
 * E_PORT_IN_USE before spawning anything when another process holds the port. Resolves once
 * Postgres accepts connections; E_INSTANCE_START_FAILED (with postgres.log's tail) when it
 * exits during startup, E_INSTANCE_START_TIMEOUT after startTimeoutMs (it is left running:
 * crash recovery may simply be slow, and the next start adopts it).
 */
export async function startInstance(spec: InstanceSpec): Promise<PostgresProcess> {
  const state = await instanceState(spec)
  if (state !== 'ready') {
    throw INSTANCE_NOT_INITIALIZED({ instance: spec.name, dataDir: spec.dataDir, leftover: state === 'initializing-leftover' })
  }
  const pf = await readPostmasterPid(spec.dataDir)
  if (pf) {
    if (await isOurPostmaster(pf.pid, spec.dataDir)) {
      const handle = adoptedHandle(spec, pf.pid)
      let dead = false
      void handle.exited.then(() => (dead = true))
      try {
        await waitReady(spec, handle, () => dead, 0, pf.port || spec.port)
      } catch (err) {
        handle.detach()
        throw err
      }
      spec.log?.info({ instance: spec.name, pid: pf.pid }, 'adopted running postgres')
      return handle
    }
    // Dead PID, or a recycled PID that is not a postmaster of this data dir: Postgres would
    // refuse to start while a live process holds "its" PID, so the lock file goes.
    spec.log?.warn({ instance: spec.name, pid: pf.pid }, 'removing stale postmaster.pid')
    await clearOrphans(spec)
    await fsp.rm(postmasterPidPath(spec.dataDir), { force: true })
  } else {
    await clearOrphans(spec)
  }
  await removeStaleSocketLock(socketDirFor(spec.instanceDir, spec.port), spec.port)
  if (!(await isPortFree(spec.port, spec.host))) throw PORT_IN_USE({ port: spec.port, what: spec.portConfigKey ?? 'postgres.port' })

  await ensureInstanceDir(spec)
  await writeInstanceConf(spec)
  const fh = await fsp.open(spec.logFile, 'a', 0o640)
  let logFrom: number
  let child: ReturnType<typeof spawnLong>
  try {
    await chownTo(spec.logFile, spec.runAs)
    logFrom = (await fh.stat()).size
    // execa's typings reject a bare fd inside the stdio array; Node and execa accept it.
    const stdio = ['ignore', fh.fd, fh.fd] as unknown as Options['stdio']
    child = pgControl(spec.bins, spec.runAs).spawnPostmaster(spec.dataDir, stdio)
  } finally {
    await fh.close()
  }
  // Its own session and process group, and no hold on our event loop: Postgres outlives us.
  child.nodeChildProcess.unref()
  const pid = child.pid
  let dead = false
  const exited: Promise<PostgresExit> = Promise.resolve(child).then(
    (r) => ({ code: r.exitCode ?? null, signal: r.signal ?? null }),
    () => ({ code: null, signal: null }),
  )
  void exited.then(() => (dead = true))
  if (pid === undefined) {
    await exited
    throw INSTANCE_START_FAILED({ instance: spec.name, reason: 'the postgres binary could not be spawned', logTail: '' })
  }
  const handle = childHandle(spec, pid, exited)
  spec.log?.info({ instance: spec.name, pid, port: spec.port }, 'started postgres')
  try {
    await waitReady(spec, handle, () => dead, logFrom, spec.port)
  } catch (err) {
    if (dead) await exited
    throw err
  }
  return handle
}

/** The handle of a postmaster that is the kernel's own child (its exit is the child's, not a poll). */
function childHandle(spec: InstanceSpec, pid: number, exited: Promise<PostgresExit>): PostgresProcess {
  return { pid, adopted: false, exited, stop: (mode, timeoutMs) => signalAndWait(spec, pid, exited, mode, timeoutMs), detach: () => undefined }
}

/**
 * The postmaster the kernel's first stage spawned for this data dir (src/postgres/early-start.ts),
 * taken over as if startInstance had spawned it: same handle (the child's exit, not polling),
 * same readiness wait. Only when it is exactly what startInstance would start now: the same
 * postgres binary, the same OS user, no ssl (certificate copies are rewritten at boot), and
 * magflock.conf, postgresql.conf and pg_hba.conf unchanged by writeInstanceConf. Otherwise (or when it died: port taken, stale lock) it is
 * stopped and undefined is returned, and the caller takes the usual path, which reports the
 * cause as it always does. Undefined too when there is none.
 */
export async function takeEarlyPostmaster(spec: InstanceSpec): Promise<PostgresProcess | undefined> {
  const e = takeEarlyChild(spec.dataDir)
  if (!e) return undefined
  let usable: boolean
  try {
    // With ssl on, the boot has just (re)written the certificate copies Postgres reads
    // (src/tls/boot.ts): an early postmaster may hold the previous ones, so it is not used.
    usable = !e.dead() && spec.settings?.ssl !== true && e.recipe.postgres === postmasterBinary(spec.bins) && sameRunAs(e.recipe.runAs, spec.runAs)
    // Always done, as every start does; a conf change means the early postmaster read old settings.
    if (usable) await ensureInstanceDir(spec)
    if (usable && (await writeInstanceConf(spec))) usable = false
  } catch {
    usable = false
  }
  if (!usable) {
    if (!e.dead()) spec.log?.info({ instance: spec.name, pid: e.pid }, 'early-started postgres does not match the configuration; restarting it')
    await stopEarly(e)
    return undefined
  }
  const pid = e.pid
  const exited: Promise<PostgresExit> = e.exited
  const handle = childHandle(spec, pid, exited)
  try {
    await waitReady(spec, handle, e.dead, e.logFrom, spec.port)
  } catch (err) {
    // Died while starting: the usual path starts it again and reports what goes wrong.
    if (e.dead()) return undefined
    throw err
  }
  spec.log?.info({ instance: spec.name, pid, port: spec.port, early: true }, 'started postgres')
  return handle
}

/**
 * Stops the instance through postmaster.pid, without a handle (e.g. `magflock down` while the
 * kernel is gone). A no-op when it is not running; `wasRunning` says which.
 */
export async function stopInstance(spec: InstanceSpec, mode: StopMode = 'fast', timeoutMs?: number): Promise<{ wasRunning: boolean; pid: number | null }> {
  const pf = await readPostmasterPid(spec.dataDir)
  if (!pf || !(await isOurPostmaster(pf.pid, spec.dataDir))) return { wasRunning: false, pid: null }
  const handle = adoptedHandle(spec, pf.pid)
  try {
    await handle.stop(mode, timeoutMs)
  } finally {
    handle.detach()
  }
  return { wasRunning: true, pid: pf.pid }
}
