import { accessSync, constants, readFileSync } from 'node:fs'
import { promises as fsp } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { Options } from 'execa'
import { execa } from 'execa'
import type { OsUser } from '../platform/os-user.js'
import { writeFileAtomic } from '../platform/fs.js'
import { isProcessAliveSync } from '../platform/pids.js'
import { isPortFree } from '../platform/ports.js'
import { PORT_IN_USE } from '../errors/index.js'
import { POOLER_BINARY_MISSING, POOLER_START_FAILED } from './errors.js'
import type { PoolerLayout } from './ini.js'

/**
 * PgBouncer's process: found like the Postgres binaries, started as the Postgres OS user in
 * its own process group (it outlives the kernel, like Postgres), adopted through its pidfile
 * by the next kernel, stopped by signal. Its environment is an allow-list: nothing of the
 * kernel's environment (the master key!) reaches it.
 */
const SEARCH = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/sbin/pgbouncer', '/usr/local/bin/pgbouncer']

export function findPgbouncer(env: NodeJS.ProcessEnv = process.env): string {
  const fromPath = (env.PATH ?? '').split(':').filter(Boolean).map((d) => path.join(d, 'pgbouncer'))
  const candidates = [...SEARCH, ...fromPath]
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      return c
    } catch {
      // next
    }
  }
  throw POOLER_BINARY_MISSING({ searched: [...new Set(candidates)] })
}

export interface PoolerProcess {
  pid: number
  adopted: boolean
  /** Resolves when the process is gone. */
  exited: Promise<void>
  /** Stops watching without signalling (kernel stops, PgBouncer keeps serving). */
  detach(): void
}

const POLL_MS = 100

/** Reads the pidfile; the pid only when it is a live pgbouncer started with our ini. */
export async function runningPid(layout: PoolerLayout): Promise<number | undefined> {
  const text = await fsp.readFile(layout.pidfile, 'utf8').catch(() => undefined)
  const pid = Number(text?.trim())
  if (!Number.isInteger(pid) || pid <= 0 || !isProcessAliveSync(pid)) return undefined
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    if (!argv.some((a) => a.endsWith('pgbouncer')) || !argv.includes(layout.ini)) return undefined
  } catch {
    return undefined
  }
  return pid
}

function watchPid(pid: number): { exited: Promise<void>; detach(): void } {
  let timer: NodeJS.Timeout | undefined
  const exited = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      if (!isProcessAliveSync(pid)) {
        clearInterval(timer)
        resolve()
      }
    }, POLL_MS)
    timer.unref()
  })
  return { exited, detach: () => clearInterval(timer) }
}

/** Adopts a running PgBouncer of this flock (a kernel restarted, or was killed). */
export async function adoptPooler(layout: PoolerLayout): Promise<PoolerProcess | undefined> {
  const pid = await runningPid(layout)
  if (pid === undefined) return undefined
  return { pid, adopted: true, ...watchPid(pid) }
}

async function logTail(file: string, from: number): Promise<string> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '')
  return text.slice(from).trim().split('\n').slice(-10).join('\n')
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** Creates <state>/pooler 0700 and writes a file 0600, both owned by the Postgres OS user. */
export async function writePoolerFile(layout: PoolerLayout, file: string, text: string, runAs: OsUser | undefined): Promise<void> {
  await fsp.mkdir(layout.dir, { recursive: true, mode: 0o700 })
  await fsp.chmod(layout.dir, 0o700)
  if (runAs) await fsp.chown(layout.dir, runAs.uid, runAs.gid)
  await writeFileAtomic(file, text, { mode: 0o600, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) })
}

/**
 * Starts PgBouncer with the ini already written; resolves once it accepts connections.
 * E_PORT_IN_USE before spawning when pooler.port is taken; E_POOLER_START_FAILED with the
 * log's tail when it exits during startup.
 */
export async function startPooler(opts: { bin: string; layout: PoolerLayout; runAs: OsUser | undefined; host: string; port: number; timeoutMs?: number }): Promise<PoolerProcess> {
  const { layout, runAs } = opts
  if (!(await isPortFree(opts.port, opts.host))) throw PORT_IN_USE({ port: opts.port, what: 'pooler.port' })
  await fsp.rm(layout.pidfile, { force: true })
  const fh = await fsp.open(layout.logFile, 'a', 0o600)
  let from: number
  let child
  try {
    if (runAs) await fsp.chown(layout.logFile, runAs.uid, runAs.gid)
    from = (await fh.stat()).size
    const o: Record<string, unknown> = {
      extendEnv: false,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', ...(runAs ? { HOME: runAs.home, USER: runAs.name } : {}) },
      cwd: layout.dir,
      detached: true,
      stdio: ['ignore', fh.fd, fh.fd],
      buffer: false,
      reject: false,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    }
    child = execa(opts.bin, [layout.ini], o as Options)
  } finally {
    await fh.close()
  }
  child.nodeChildProcess.unref()
  const pid = child.pid
  let dead = false
  const exited: Promise<void> = Promise.resolve(child).then(
    () => undefined,
    () => undefined,
  )
  void exited.then(() => (dead = true))
  if (pid === undefined) throw POOLER_START_FAILED({ reason: 'the pgbouncer binary could not be spawned', logTail: '' })
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000)
  for (;;) {
    if (dead) throw POOLER_START_FAILED({ reason: 'pgbouncer exited during startup', logTail: await logTail(layout.logFile, from) })
    if (await accepts(opts.host, opts.port)) break
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL')
      throw POOLER_START_FAILED({ reason: 'pgbouncer did not accept connections in time', logTail: await logTail(layout.logFile, from) })
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
  // Our own pidfile too: PgBouncer writes it only when it daemonizes in some versions.
  if ((await runningPid(layout)) !== pid) await writePoolerFile(layout, layout.pidfile, `${pid}\n`, runAs)
  return { pid, adopted: false, exited, detach: () => undefined }
}

/** SIGTERM (PgBouncer's immediate shutdown: SIGINT would wait for every client), then SIGKILL. */
export async function stopPid(pid: number, timeoutMs = 10_000): Promise<void> {
  if (!isProcessAliveSync(pid)) return
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  const deadline = Date.now() + timeoutMs
  while (isProcessAliveSync(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
      break
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Stops a PgBouncer of this flock left without a kernel (`magflock down`). */
export async function stopOrphanPooler(layout: PoolerLayout): Promise<boolean> {
  const pid = await runningPid(layout)
  if (pid === undefined) return false
  await stopPid(pid)
  return true
}
