import { readFileSync } from 'node:fs'
import { promises as fsp } from 'node:fs'
import { z } from 'zod'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import type { StateLayout } from '../platform/paths.js'
import { isProcessAliveSync } from '../platform/pids.js'

/** `<state>/kernel.json`: written by a kernel once it serves, removed on orderly exit. */
export const KernelInfo = z.object({
  pid: z.number().int(),
  socket: z.string(),
  version: z.string(),
  startedAt: z.string(),
  env: z.string(),
  projectDir: z.string(),
  metricsUrl: z.string().nullable(),
})
export type KernelInfo = z.infer<typeof KernelInfo>

export async function readKernelInfo(layout: StateLayout): Promise<KernelInfo | undefined> {
  return readJsonFile(layout.kernelJson, (v) => KernelInfo.parse(v))
}

export async function writeKernelInfo(layout: StateLayout, info: KernelInfo): Promise<void> {
  await writeJsonAtomic(layout.kernelJson, info, 0o600)
}

/**
 * True only when `pid` is alive AND is a MagFlock kernel: a PID recorded by a kernel that
 * died may since belong to any other process, and must never be trusted (or signalled).
 */
export function isKernelProcess(pid: number): boolean {
  if (!isProcessAliveSync(pid)) return false
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    // Either the detached kernel (dist/daemon/entry.js; dist/kernel/entry.js from builds before
    // the composition root moved to src/daemon) or `magflock kernel start --foreground`.
    if (cmd.some((a) => /(?:daemon|kernel)[/\\]entry\.js$/.test(a))) return true
    return cmd.includes('kernel') && cmd.includes('start') && cmd.some((a) => /run\.js$|magflock$/.test(a))
  } catch {
    return false
  }
}

export type KernelLiveness =
  | { state: 'running'; info: KernelInfo }
  | { state: 'stale'; info: KernelInfo; reason: string }
  | { state: 'absent' }

export async function kernelLiveness(layout: StateLayout): Promise<KernelLiveness> {
  const info = await readKernelInfo(layout)
  if (!info) return { state: 'absent' }
  if (!isKernelProcess(info.pid)) return { state: 'stale', info, reason: `pid ${info.pid} is not a running kernel` }
  return { state: 'running', info }
}

export async function removeKernelInfo(layout: StateLayout): Promise<void> {
  await fsp.rm(layout.kernelJson, { force: true })
}
