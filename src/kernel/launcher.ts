import { spawn } from 'node:child_process'
import { openSync, closeSync, promises as fsp } from 'node:fs'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import { MagflockError, TIMEOUT } from '../errors/index.js'
import type { StateLayout } from '../platform/paths.js'
import { KERNEL_START_FAILED } from './errors.api.js'
import { kernelLiveness, removeKernelInfo, type KernelInfo } from './state.js'
import { isProcessAliveSync } from '../platform/pids.js'

const ENTRY_JS = fileURLToPath(new URL('./entry.js', import.meta.url))

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
 * kernel (src/kernel/entry.ts), then waits until its socket answers, or reports the
 * error the kernel recorded when it could not boot (port in use, missing binary, …).
 */
export async function ensureKernel(
  layout: StateLayout,
  opts: { projectDir: string; env?: string | undefined; timeoutMs?: number },
): Promise<EnsureResult> {
  const cleaned: string[] = []
  const live = await kernelLiveness(layout)
  if (live.state === 'running' && (await socketAnswers(live.info.socket))) {
    return { launched: false, pid: live.info.pid, cleaned }
  }
  if (live.state === 'stale') {
    cleaned.push(`kernel.json (${live.reason})`)
    await removeKernelInfo(layout)
  }
  await fsp.mkdir(layout.root, { recursive: true, mode: 0o711 })
  const startErrorFile = `${layout.root}/kernel.start-error.json`
  await fsp.rm(startErrorFile, { force: true })
  const outFile = `${layout.root}/kernel.out`
  const out = openSync(outFile, 'a', 0o600)
  const args = [ENTRY_JS, '--state-dir', layout.root]
  if (opts.env) args.push('--env', opts.env)
  const child = spawn(process.execPath, args, {
    cwd: opts.projectDir,
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  })
  closeSync(out)
  let exited: number | null | undefined
  child.once('exit', (code) => (exited = code))
  child.unref()

  const deadline = Date.now() + (opts.timeoutMs ?? 180_000)
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      const recorded = await fsp.readFile(startErrorFile, 'utf8').catch(() => undefined)
      if (recorded) {
        const parsed = JSON.parse(recorded) as { error: ConstructorParameters<typeof MagflockError>[0] }
        throw MagflockError.fromWire(parsed.error)
      }
      const tail = (await fsp.readFile(outFile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ')
      throw KERNEL_START_FAILED({ reason: `it exited with code ${exited}${tail ? `: ${tail}` : ''}`, log: layout.kernelLog })
    }
    const l = await kernelLiveness(layout).catch(() => ({ state: 'absent' as const }))
    if (l.state === 'running' && l.info.pid === child.pid && (await socketAnswers(l.info.socket))) {
      return { launched: true, pid: child.pid, cleaned }
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw TIMEOUT({ what: 'the kernel to start', ms: opts.timeoutMs ?? 180_000 })
}

/** Waits until the kernel process is gone (after a shutdown request). */
export async function waitForKernelExit(info: KernelInfo, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (isProcessAliveSync(info.pid)) {
    if (Date.now() > deadline) throw TIMEOUT({ what: `kernel pid ${info.pid} to exit`, ms: timeoutMs })
    await new Promise((r) => setTimeout(r, 50))
  }
}
