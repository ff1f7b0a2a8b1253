import { promises as fsp } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { pollSerially } from './tools.js'

/**
 * Writes a tool's output back to disk while the tool still writes it (pg_basebackup told
 * `--no-sync`): every `intervalMs`, each file in `dir` that grew by at least `stepBytes` since
 * its last flush gets an fdatasync (at most one in flight per file, on the thread pool), so
 * the one fsync per file that the manifest step does (describeFiles) finds little left to
 * write. It replaces no fsync: it only moves the bulk of the writeback to while the copy runs,
 * instead of after it (where pg_basebackup without --no-sync does its own).
 *
 * Errors are ignored here: a failed early flush makes the later, checked fsync fail or do the
 * work itself.
 */
export function writeBackWhileWriting(dir: string, intervalMs = 100, stepBytes = 8 << 20): { stop(): Promise<void> } {
  interface Tracked {
    fh: FileHandle
    flushed: number
    inFlight?: Promise<void> | undefined
  }
  const files = new Map<string, Tracked>()
  let stopped = false
  const tick = async () => {
    const names = await fsp.readdir(dir).catch(() => [] as string[])
    for (const name of names) {
      if (stopped) return
      let f = files.get(name)
      if (!f) {
        const fh = await fsp.open(path.join(dir, name), 'r').catch(() => undefined)
        if (!fh) continue
        if (stopped) {
          await fh.close().catch(() => undefined)
          return
        }
        f = { fh, flushed: 0 }
        files.set(name, f)
      }
      if (f.inFlight) continue
      const st = await f.fh.stat().catch(() => undefined)
      if (!st?.isFile() || st.size - f.flushed < stepBytes) continue
      const t = f
      const size = st.size
      t.inFlight = t.fh
        .datasync()
        .then(() => {
          t.flushed = size
        })
        .catch(() => undefined)
        .finally(() => {
          t.inFlight = undefined
        })
    }
  }
  const ticks = pollSerially(tick, intervalMs)
  let stopping: Promise<void> | undefined
  const stop = async () => {
    stopped = true
    await ticks.stop()
    // An fdatasync in flight finishes first (a later fsync of the file would wait for it anyway).
    await Promise.all(
      [...files.values()].map(async (f) => {
        await f.inFlight
        await f.fh.close().catch(() => undefined)
      }),
    )
    files.clear()
  }
  return {
    /** Idempotent; never rejects. */
    stop: () => (stopping ??= stop().catch(() => undefined)),
  }
}
