import { existsSync, promises as fsp, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import path from 'node:path'
import { isProcessAliveSync } from '../platform/pids.js'

/**
 * postmaster.pid is Postgres' own lock file and the only record of a running postmaster that
 * survives the kernel. MagFlock reads it to re-adopt instances after a kernel restart, and
 * never trusts the PID in it blindly: PIDs are recycled, so a PID is "ours" only when that
 * process is a postmaster whose working directory (Postgres chdirs into its data directory)
 * or `-D` argument is this data directory.
 *
 * Layout (PostgreSQL 10+, src/include/utils/pidfile.h): one value per line —
 *   1 pid, 2 data directory, 3 start time (epoch s), 4 port, 5 first socket directory,
 *   6 first listen address, 7 shared memory key and id, 8 status (starting|stopping|ready|standby).
 */
export interface PostmasterPid {
  pid: number
  dataDir: string
  startedAt: number
  port: number
  socketDir: string
  listen: string
  status: string
}

export function parsePostmasterPid(text: string): PostmasterPid | undefined {
  const lines = text.split('\n')
  const pid = Number.parseInt(lines[0] ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  return {
    pid,
    dataDir: (lines[1] ?? '').trim(),
    startedAt: Number.parseInt(lines[2] ?? '', 10) || 0,
    port: Number.parseInt(lines[3] ?? '', 10) || 0,
    socketDir: (lines[4] ?? '').trim(),
    listen: (lines[5] ?? '').trim(),
    // Status is space-padded ("ready   ") and absent while the postmaster is very young.
    status: (lines[7] ?? '').trim(),
  }
}

export function postmasterPidPath(dataDir: string): string {
  return path.join(dataDir, 'postmaster.pid')
}

/** The parsed lock file, or undefined when it is absent or unparsable (a half-written one). */
export async function readPostmasterPid(dataDir: string): Promise<PostmasterPid | undefined> {
  let text: string
  try {
    text = await fsp.readFile(postmasterPidPath(dataDir), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw err
  }
  return parsePostmasterPid(text)
}

/**
 * True when the PID names a live process. A zombie (dead but not yet reaped: our container's
 * PID 1 may never reap orphans) counts as dead, because it holds no resources and never answers.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  return isProcessAliveSync(pid)
}

/** The same check, synchronous: the platform's (see src/platform/pids.ts). */
export { isProcessAliveSync }

async function realpathOrSelf(p: string): Promise<string> {
  try {
    return await fsp.realpath(p)
  } catch {
    return path.resolve(p)
  }
}

async function cmdlineOf(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')
    return raw.split('\0').filter((s) => s.length > 0)
  } catch {
    return undefined
  }
}

async function cwdOf(pid: number): Promise<string | undefined> {
  try {
    return await fsp.readlink(`/proc/${pid}/cwd`)
  } catch {
    return undefined
  }
}

/**
 * True only when `pid` is a live postmaster serving `dataDir`. Backends share the postmaster's
 * cwd but rewrite their command line ("postgres: checkpointer"), so argv[0] must be exactly
 * the postgres binary; then either the cwd or the `-D` argument must be this data directory.
 */
export async function isOurPostmaster(pid: number, dataDir: string): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false
  const argv = await cmdlineOf(pid)
  if (!argv || argv.length === 0) return false
  const exe = path.basename(argv[0] ?? '')
  if (exe !== 'postgres' && exe !== 'postmaster') return false
  const want = await realpathOrSelf(dataDir)
  const cwd = await cwdOf(pid)
  if (cwd !== undefined) return (await realpathOrSelf(cwd)) === want
  const d = argv.indexOf('-D')
  const arg = d >= 0 ? argv[d + 1] : argv.find((a) => a.startsWith('-D'))?.slice(2)
  return arg !== undefined && (await realpathOrSelf(arg)) === want
}

/** A live postmaster serves `dataDir` (answering or not): its postmaster.pid names one of ours. */
export async function postmasterRunning(dataDir: string): Promise<boolean> {
  const pid = await readPostmasterPid(dataDir).catch(() => undefined)
  return !!pid && (await isOurPostmaster(pid.pid, dataDir))
}

/** argv[0] is the postgres binary (a postmaster) or its rewritten title ("postgres: walwriter"). */
function isPostgresArgv(argv: string[] | undefined): boolean {
  const first = path.basename(argv?.[0] ?? '')
  return first === 'postgres' || first === 'postmaster' || first.startsWith('postgres:')
}

/**
 * Every pid in /proc but our own (none where there is no /proc). The process scans below read
 * /proc synchronously: procfs answers from memory in microseconds, while one thread-pool round
 * trip per pid costs milliseconds on a loaded host, and these scans sit on the failover path.
 */
function otherPids(): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  return entries.filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid).map(Number)
}

function cwdOfSync(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`)
  } catch {
    return undefined
  }
}

function cmdlineOfSync(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s.length > 0)
  } catch {
    return undefined
  }
}

/**
 * Every live Postgres process whose working directory is `dataDir`: the postmaster and its
 * children, including backends orphaned by a postmaster that was killed with SIGKILL. Those
 * orphans keep the old shared memory segment attached, and a new postmaster must not start
 * beside them. Other processes sitting in the directory (an operator's shell after `cd data`)
 * are not Postgres and are never returned, because callers signal what this returns.
 */
export async function processesInDataDir(dataDir: string): Promise<number[]> {
  const want = await realpathOrSelf(dataDir)
  return otherPids().filter((pid) => cwdOfSync(pid) === want && isPostgresArgv(cmdlineOfSync(pid)) && isProcessAliveSync(pid))
}

/**
 * Live processes whose argv holds `arg` as one whole argument (e.g. an initdb still writing
 * into a data.initializing whose kernel died: it is an orphan now, not gone).
 */
export async function processesWithArg(arg: string): Promise<number[]> {
  return otherPids().filter((pid) => cmdlineOfSync(pid)?.includes(arg) === true && isProcessAliveSync(pid))
}

/**
 * SIGKILLs every Postgres process of `dataDir` (see processesInDataDir) until none is left, and
 * returns the pids signalled. For a postmaster seen dead: its orphaned backends would keep the
 * shared memory attached (a new postmaster refuses to start beside them) and, worse, a
 * backend still serving its client could acknowledge a commit that no replica will ever get.
 * They are useless without their postmaster, and crash recovery follows anyway, so no gentler
 * signal first. Bounded: gives up after `timeoutMs` (a process in uninterruptible I/O).
 */
/**
 * Waits (bounded) until the killed pids have left the process table. A SIGKILLed postmaster
 * that is the kernel's own child stays a zombie until the event loop reaps it, and a zombie
 * still answers kill(pid, 0): Postgres (pg_rewind's single-user run, a restart) then takes its
 * postmaster.pid for a live server ("lock file already exists"). Awaiting lets Node reap it.
 */
async function reaped(pids: number[], deadline: number): Promise<void> {
  const until = Math.min(deadline, Date.now() + 2000)
  while (pids.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
}

export async function killProcessesInDataDir(dataDir: string, timeoutMs = 3000): Promise<number[]> {
  const killed: number[] = []
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const pids = await processesInDataDir(dataDir).catch(() => [] as number[])
    if (pids.length === 0 || Date.now() > deadline) {
      await reaped(killed, deadline)
      return killed
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
        if (!killed.includes(pid)) killed.push(pid)
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * Removes the Unix socket lock (`.s.PGSQL.<port>.lock`) in `socketDir` when the PID it names
 * is dead or a zombie. Postgres removes a lock whose PID is gone, but `kill(pid, 0)` succeeds
 * on a zombie: where PID 1 does not reap orphans (our containers), a SIGKILLed postmaster's
 * lock would refuse every later start on that port ("Is another postmaster using socket file").
 * A lock held by a live process is left alone, so Postgres still refuses a real conflict.
 */
export async function removeStaleSocketLock(socketDir: string, port: number): Promise<boolean> {
  if (!socketDir) return false
  const lock = path.join(socketDir, `.s.PGSQL.${port}.lock`)
  const text = await fsp.readFile(lock, 'utf8').catch(() => undefined)
  if (text === undefined) return false
  const pid = Number(text.split('\n')[0]?.trim())
  if (Number.isInteger(pid) && pid > 0 && isProcessAliveSync(pid)) return false
  await fsp.rm(lock, { force: true })
  await fsp.rm(path.join(socketDir, `.s.PGSQL.${port}`), { force: true })
  return true
}
