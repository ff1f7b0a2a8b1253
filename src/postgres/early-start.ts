import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, fchownSync, fstatSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import path from 'node:path'
import { childEnv } from '../platform/child-env.js'

/**
 * The kernel's first stage (src/daemon/entry.ts): before the kernel bundle loads (~200 ms of
 * CPU), the postmasters of a flock that was shut down cleanly are spawned, so that Postgres
 * boots while the kernel loads. They are children of this very process: the instance
 * supervisor later TAKES the child (takeEarlyPostmaster in src/postgres/instance.ts) instead
 * of spawning one, so supervision, stop and `status` are those of a postmaster the kernel
 * started itself, never an "adopted" one.
 *
 * What to spawn comes from <state>/postgres-launch.json, written by the postgres component
 * after each successful boot (the postgres binary and the OS user it ran as); which instances
 * from topology.json. Nothing config-dependent is decided here: the kernel, once it has its
 * config, checks that it would have spawned the same binary as the same user and that
 * magflock.conf, postgresql.conf and pg_hba.conf are what it would write; otherwise it stops
 * the early postmaster and starts its own (a changed magflock.yaml costs one restart).
 *
 * Only the plain case is taken, everything else is left to the kernel's usual path: no
 * postmaster.pid (a clean shutdown: no orphaned backends, no stale lock), no kernel.lock at
 * all (this stage takes it, as the boot would, before spawning anything), no fence or interrupted-restore marker, no half-added replica, a
 * data dir with PG_VERSION. Postgres' own data dir lock (postmaster.pid, created O_EXCL)
 * still guards against two postmasters. Never throws: a first stage that cannot decide does
 * nothing.
 */
export const LAUNCH_RECIPE_FILE = 'postgres-launch.json'

/** Same rule as INSTANCE_NAME_RE (src/platform/paths.ts; a unit test keeps them equal), copied to keep this module tiny. */
export const EARLY_INSTANCE_NAME_RE = /^[a-z][a-z0-9_-]{0,39}$/

export interface LaunchRecipe {
  /** Absolute path of the postgres binary the last boot ran. */
  postgres: string
  runAs: { name: string; uid: number; gid: number; home: string } | null
  /** The last boot ran Postgres with ssl: the kernel would not take an early postmaster, so none is spawned. */
  ssl?: boolean
}

export interface EarlyExit {
  code: number | null
  signal: string | null
}

export interface EarlyPostmaster {
  name: string
  dataDir: string
  pid: number
  recipe: LaunchRecipe
  /** Size of postgres.log before the spawn: this start's lines begin there. */
  logFrom: number
  exited: Promise<EarlyExit>
  /** True once the child exited. */
  dead(): boolean
}

const early = new Map<string, EarlyPostmaster>()

const ROLES = new Set(['primary', 'replica', 'standalone'])

function readRecipe(stateDir: string): LaunchRecipe | undefined {
  const file = path.join(stateDir, LAUNCH_RECIPE_FILE)
  // Written by the kernel (our uid), 0600 in the 0711 state root: anything else is not trusted.
  const st = statSync(file, { throwIfNoEntry: false })
  if (!st?.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) return undefined
  const r = JSON.parse(readFileSync(file, 'utf8')) as Partial<LaunchRecipe>
  if (typeof r.postgres !== 'string' || !path.isAbsolute(r.postgres)) return undefined
  const u = r.runAs
  if (u !== null && (typeof u !== 'object' || !Number.isInteger(u.uid) || !Number.isInteger(u.gid) || typeof u.name !== 'string' || typeof u.home !== 'string')) return undefined
  if (r.ssl !== undefined && typeof r.ssl !== 'boolean') return undefined
  return { postgres: r.postgres, runAs: u ?? null, ssl: r.ssl === true }
}

/**
 * Takes the kernel lock (<state>/kernel.lock, O_EXCL with our pid, as acquireKernelLock in
 * src/kernel/lock.ts does; the boot then finds its own pid there and keeps it). False when
 * the file exists: a live kernel of this state dir, or a stale lock that the kernel's usual
 * path judges. So no other kernel can adopt a postmaster this stage spawns.
 */
function takeLock(stateDir: string): boolean {
  let fd: number
  try {
    fd = openSync(path.join(stateDir, 'kernel.lock'), 'wx', 0o600)
  } catch {
    return false
  }
  // No fsync: O_EXCL makes the file visible to every other process at once, and after a
  // machine crash no kernel holds anything (a stale lock's pid is judged by the kernel's path).
  try {
    writeSync(fd, String(process.pid))
  } finally {
    closeSync(fd)
  }
  return true
}

/** Removes kernel.lock if it still holds our pid (a boot that failed before it took the lock over). */
export function releaseEarlyLock(stateDir: string): void {
  const file = path.join(stateDir, 'kernel.lock')
  try {
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true })
  } catch {
    // no lock, or not ours
  }
}

/**
 * Spawns the postmaster of every member of topology.json that qualifies (see above); returns
 * their names. Called once, before the kernel loads.
 */
export function startEarlyPostmasters(stateDir: string): string[] {
  try {
    const recipe = readRecipe(stateDir)
    if (!recipe || recipe.ssl) return []
    const root = process.getuid?.() === 0
    // Postgres refuses root; a non-root kernel cannot switch users: the kernel path decides.
    if (root ? !recipe.runAs || recipe.runAs.uid === 0 : recipe.runAs !== null) return []
    if (!existsSync(recipe.postgres)) return []
    const topology = JSON.parse(readFileSync(path.join(stateDir, 'topology.json'), 'utf8')) as { instances?: Array<{ name?: unknown; role?: unknown }> }
    if (!takeLock(stateDir)) return []
    const started: string[] = []
    for (const m of topology.instances ?? []) {
      if (typeof m.name !== 'string' || !EARLY_INSTANCE_NAME_RE.test(m.name) || typeof m.role !== 'string' || !ROLES.has(m.role)) continue
      const instanceDir = path.join(stateDir, 'instances', m.name)
      const dataDir = path.join(instanceDir, 'data')
      if (early.has(path.resolve(dataDir))) continue
      if (!existsSync(path.join(dataDir, 'PG_VERSION')) || existsSync(path.join(dataDir, 'postmaster.pid'))) continue
      if (['fence.json', 'restore-in-progress.json', 'adding.json'].some((f) => existsSync(path.join(instanceDir, f)))) continue
      const e = spawnOne(m.name, instanceDir, dataDir, recipe)
      if (e) {
        early.set(path.resolve(dataDir), e)
        started.push(m.name)
      }
    }
    return started
  } catch {
    return []
  }
}

function spawnOne(name: string, instanceDir: string, dataDir: string, recipe: LaunchRecipe): EarlyPostmaster | undefined {
  // As startInstance does: postgres.log appended (0640, owned by the postgres user), its own
  // session, an allow-listed environment, cwd /tmp when switching users.
  const fd = openSync(path.join(instanceDir, 'postgres.log'), 'a', 0o640)
  let child: ChildProcess
  let logFrom: number
  try {
    const u = recipe.runAs
    if (u) fchownSync(fd, u.uid, u.gid)
    logFrom = fstatSync(fd).size
    const env = childEnv(u ? { HOME: u.home, USER: u.name, LOGNAME: u.name } : {})
    child = spawn(recipe.postgres, ['-D', dataDir], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env,
      ...(u ? { uid: u.uid, gid: u.gid, cwd: '/tmp' } : {}),
    })
  } finally {
    closeSync(fd)
  }
  let isDead = false
  const exited = new Promise<EarlyExit>((resolve) => {
    const done = (x: EarlyExit) => {
      isDead = true
      resolve(x)
    }
    child.once('exit', (code, signal) => done({ code, signal }))
    child.once('error', () => done({ code: null, signal: null }))
  })
  // Postgres outlives the kernel: no hold on our event loop.
  child.unref()
  if (child.pid === undefined) return undefined
  return { name, dataDir, pid: child.pid, recipe, logFrom, exited, dead: () => isDead }
}

/** The early postmaster of this data dir, handed over once (the caller now owns it). */
export function takeEarlyChild(dataDir: string): EarlyPostmaster | undefined {
  const key = path.resolve(dataDir)
  const e = early.get(key)
  early.delete(key)
  return e
}

/** Was this pid spawned by the first stage (and not yet taken)? */
export function isEarlyPid(pid: number): boolean {
  for (const e of early.values()) if (e.pid === pid) return true
  return false
}

/**
 * Stops early postmasters nobody took (the boot failed, or skipped the instance): fast
 * shutdown, immediate after `timeoutMs`. The kernel never leaves running what it did not
 * mean to start. Returns their names.
 */
export async function discardEarlyPostmasters(timeoutMs = 60_000): Promise<string[]> {
  const left = [...early.values()]
  early.clear()
  for (const e of left) await stopEarly(e, timeoutMs)
  return left.map((e) => e.name)
}

/** SIGINT (fast shutdown), SIGQUIT after timeoutMs; resolves when the child exited. */
export async function stopEarly(e: EarlyPostmaster, timeoutMs = 60_000): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      if (!e.dead()) process.kill(e.pid, s)
    } catch {
      // already gone
    }
  }
  signal('SIGINT')
  let timer: NodeJS.Timeout | undefined
  const late = await Promise.race([e.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)))])
  clearTimeout(timer)
  if (late) {
    signal('SIGQUIT')
    await e.exited
  }
}

/** The same OS user (and so the same uid, gid and HOME/USER in the child's environment). */
export function sameRunAs(a: LaunchRecipe['runAs'], b: { name: string; uid: number; gid: number; home: string } | undefined): boolean {
  if (!a || !b) return !a && !b
  return a.uid === b.uid && a.gid === b.gid && a.name === b.name && a.home === b.home
}
