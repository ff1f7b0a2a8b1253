import { readFileSync } from 'node:fs'

/**
 * Is this process alive (and not a zombie)? `kill(pid, 0)` alone is not enough: in a
 * container whose PID 1 never reaps orphans, a dead process stays a zombie and the signal
 * still succeeds, so pid-file and lock-file checks would wait forever on a ghost.
 * One small /proc read; synchronous so polling loops can use it.
 */
export function isProcessAliveSync(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return process.platform !== 'linux'
  }
}
