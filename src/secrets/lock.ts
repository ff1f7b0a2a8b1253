import { promises as fsp } from 'node:fs'
import os from 'node:os'
import { randomBytes } from 'node:crypto'
import { VAULT_BUSY } from './errors.js'
import { isProcessAliveSync } from '../platform/pids.js'

/**
 * A cross-process lock file around the vault's read-modify-write: the CLI and the kernel may
 * both write. O_EXCL creation is the lock; the file holds pid, host and time so a lock left
 * by a dead process (same host, pid gone) or an old one (older than staleMs) is broken.
 * Breaking goes through rename to a unique name, then re-checks that what was moved is the
 * stale lock we judged, so two processes breaking at once cannot remove a fresh lock.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: { timeoutMs?: number; staleMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  const staleMs = opts.staleMs ?? 30_000
  const deadline = Date.now() + timeoutMs
  const me = JSON.stringify({ pid: process.pid, host: os.hostname(), at: new Date().toISOString(), id: randomBytes(6).toString('hex') })
  let delay = 5
  for (;;) {
    try {
      const fh = await fsp.open(lockPath, 'wx', 0o600)
      try {
        await fh.writeFile(me)
      } finally {
        await fh.close()
      }
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const holder = await readHolder(lockPath)
    if (holder && (await isStale(lockPath, holder, staleMs))) {
      await breakLock(lockPath, holder.raw)
      continue
    }
    if (Date.now() > deadline) throw VAULT_BUSY({ lock: lockPath, holder: holder ? `pid ${holder.pid} on ${holder.host}` : 'unknown' })
    await new Promise((r) => setTimeout(r, delay))
    delay = Math.min(delay * 2, 100)
  }
  try {
    return await fn()
  } finally {
    // Only remove the lock if it is still ours.
    const cur = await fsp.readFile(lockPath, 'utf8').catch(() => undefined)
    if (cur === me) await fsp.rm(lockPath, { force: true })
  }
}

interface Holder {
  pid: number
  host: string
  raw: string
}

async function readHolder(lockPath: string): Promise<Holder | undefined> {
  const raw = await fsp.readFile(lockPath, 'utf8').catch(() => undefined)
  if (raw === undefined) return undefined
  try {
    const j = JSON.parse(raw) as { pid?: unknown; host?: unknown }
    return { pid: typeof j.pid === 'number' ? j.pid : -1, host: typeof j.host === 'string' ? j.host : '?', raw }
  } catch {
    // Half-written by a process that died between create and write: judged by age only.
    return { pid: -1, host: '?', raw }
  }
}

async function isStale(lockPath: string, h: Holder, staleMs: number): Promise<boolean> {
  if (h.host === os.hostname() && h.pid > 0 && !isProcessAliveSync(h.pid)) return true
  const st = await fsp.stat(lockPath).catch(() => undefined)
  return st !== undefined && Date.now() - st.mtimeMs > staleMs
}

async function breakLock(lockPath: string, staleContent: string): Promise<void> {
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`
  try {
    await fsp.rename(lockPath, aside)
  } catch {
    return // someone else broke or released it
  }
  const moved = await fsp.readFile(aside, 'utf8').catch(() => undefined)
  if (moved !== staleContent) {
    // We moved a fresh lock that replaced the stale one meanwhile: put it back if the
    // place is still free (link fails if another lock appeared; then that one rules).
    await fsp.link(aside, lockPath).catch(() => undefined)
  }
  await fsp.rm(aside, { force: true })
}
