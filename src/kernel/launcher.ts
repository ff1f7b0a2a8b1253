import { spawn } from 'node:child_process'
import { openSync, closeSync, fstatSync, readFileSync, promises as fsp } from 'node:fs'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import { MagflockError, TIMEOUT } from '../errors/index.js'
import type { StateLayout } from '../platform/paths.js'
import { KERNEL_START_FAILED } from './errors.api.js'
import { KERNEL_START_IN_PROGRESS } from './errors.js'
import { kernelLiveness, removeKernelInfo, type KernelInfo } from './state.js'
import { isProcessAliveSync } from '../platform/pids.js'

const ENTRY_JS = fileURLToPath(new URL('../daemon/entry.js', import.meta.url))

export function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath)
    c.once('connect', () => {
      c.destroy()
      resolve(true)
    })
    c.once('error', () => resolve(false))
  })
}

export interface EnsureResult {
  launched: boolean
  pid: number
  /** What was found and cleaned up first (stale kernel.json after a kill -9, …). */
  cleaned: string[]
}

/**
 * Makes sure a kernel serves this state dir: reuses a live one, otherwise cleans what a dead
 * one left (kernel.json naming a dead pid, a socket nobody answers) and starts a detached
 * kernel (src/daemon/entry.ts), then waits until its socket answers, or reports the
 * error the kernel recorded when it could not boot (port in use, missing binary, …).
 *
 * Two `up` at once: the launch is serialized by <state>/kernel.launch.lock (O_EXCL, holding
 * the launcher's pid; a dead holder's lock is taken over). The second launcher waits for the
 * first (within its timeout) and then finds the kernel running (launched: false), or starts
 * one itself if the first failed. It only ever reports its own kernel's error: the
 * start-error file must carry its child's pid, and only kernel.out written by its child is
 * quoted, never lines from earlier boots.
 */
export async function ensureKernel(
  layout: StateLayout,
  opts: { projectDir: string; env?: string | undefined; timeoutMs?: number; onSpawn?: () => void },
): Promise<EnsureResult> {
  const timeoutMs = opts.timeoutMs ?? 180_000
  const deadline = Date.now() + timeoutMs
  const reuse = await liveKernel(layout)
  if (reuse !== undefined) return { launched: false, pid: reuse, cleaned: [] }
  await fsp.mkdir(layout.root, { recursive: true, mode: 0o711 })
  const release = await acquireLaunchLock(layout, deadline, timeoutMs)
  try {
    // Another launcher may have started it while we waited for the lock.
    const started = await liveKernel(layout)
    if (started !== undefined) return { launched: false, pid: started, cleaned: [] }
    return await launch(layout, opts, deadline, timeoutMs)
  } finally {
    await release()
  }
}

async function liveKernel(layout: StateLayout): Promise<number | undefined> {
  const live = await kernelLiveness(layout).catch(() => ({ state: 'absent' as const }))
  if (live.state === 'running' && (await socketAnswers(live.info.socket))) return live.info.pid
  return undefined
}

function launchLockFile(layout: StateLayout): string {
  return `${layout.root}/kernel.launch.lock`
}

/** Waits (bounded) while another live launcher holds the lock; takes over a dead one's. */
async function acquireLaunchLock(layout: StateLayout, deadline: number, timeoutMs: number): Promise<() => Promise<void>> {
  const file = launchLockFile(layout)
  for (;;) {
    try {
      const fh = await fsp.open(file, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      return async () => {
        const pid = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim())
        if (pid === process.pid) await fsp.rm(file, { force: true })
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const holder = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim())
    if (holder > 0 && holder !== process.pid && isLauncher(holder)) {
      if (Date.now() > deadline) {
        throw KERNEL_START_IN_PROGRESS({ pid: holder, stateDir: layout.root, seconds: Math.round(timeoutMs / 1000) })
      }
      await new Promise((r) => setTimeout(r, 100))
      continue
    }
    // A launcher that died (or a torn lock file): give it a moment in case it is being written.
    if (!holder) await new Promise((r) => setTimeout(r, 50))
    const again = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim())
    if (again === holder) await fsp.rm(file, { force: true })
  }
}

/** A live process that is a MagFlock CLI (a recycled pid of anything else is not). */
function isLauncher(pid: number): boolean {
  if (!isProcessAliveSync(pid)) return false
  try {
    return /magflock|run\.js/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))
  } catch {
    return true // no /proc: trust the pid
  }
}

async function launch(
  layout: StateLayout,
  opts: { projectDir: string; env?: string | undefined; onSpawn?: () => void },
  deadline: number,
  timeoutMs: number,
): Promise<EnsureResult> {
  const cleaned: string[] = []
  const live = await kernelLiveness(layout)
  if (live.state === 'stale') {
    cleaned.push(`kernel.json (${live.reason})`)
    await removeKernelInfo(layout)
  }
  const startErrorFile = `${layout.root}/kernel.start-error.json`
  await fsp.rm(startErrorFile, { force: true })
  const outFile = `${layout.root}/kernel.out`
  const out = openSync(outFile, 'a', 0o600)
  // Only what this boot writes is quoted in an error.
  const outStart = fstatSync(out).size
  const args = [ENTRY_JS, '--state-dir', layout.root]
  if (opts.env) args.push('--env', opts.env)
  const child = spawn(process.execPath, args, {
    cwd: opts.projectDir,
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  })
  closeSync(out)
  opts.onSpawn?.()
  let exited: number | null | undefined
  child.once('exit', (code) => (exited = code))
  child.unref()
  const spawnedAt = Date.now()

  while (Date.now() < deadline) {
    if (exited !== undefined) {
      const recorded = await fsp.readFile(startErrorFile, 'utf8').catch(() => undefined)
      if (recorded) {
        const parsed = JSON.parse(recorded) as { pid?: number; error: ConstructorParameters<typeof MagflockError>[0] }
        if (parsed.pid === undefined || parsed.pid === child.pid) throw MagflockError.fromWire(parsed.error)
      }
      const text = await fsp.readFile(outFile).catch(() => Buffer.alloc(0))
      const tail = text.subarray(outStart).toString('utf8').trim().split('\n').slice(-3).join(' | ')
      throw KERNEL_START_FAILED({ reason: `it exited with code ${exited}${tail ? `: ${tail}` : ''}`, log: layout.kernelLog })
    }
    const l = await kernelLiveness(layout).catch(() => ({ state: 'absent' as const }))
    if (l.state === 'running' && l.info.pid === child.pid && (await socketAnswers(l.info.socket))) {
      return { launched: true, pid: child.pid, cleaned }
    }
    // Often while a warm boot is still likely to finish (a kernel.json read), then calmer.
    await new Promise((r) => setTimeout(r, Date.now() - spawnedAt < 5000 ? 10 : 50))
  }
  throw TIMEOUT({ what: 'the kernel to start', ms: timeoutMs })
}

/** Waits until the kernel process is gone (after a shutdown request). */
export async function waitForKernelExit(info: KernelInfo, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (isProcessAliveSync(info.pid)) {
    if (Date.now() > deadline) throw TIMEOUT({ what: `kernel pid ${info.pid} to exit`, ms: timeoutMs })
    await new Promise((r) => setTimeout(r, 50))
  }
}
