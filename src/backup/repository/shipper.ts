import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { parseSegmentName } from '../wal.js'
import type { S3Repository } from './s3.js'
import { isShippable, listRemoteWal, pushWalFile, type WalEncryption } from './wal.js'

/**
 * WAL off the machine: every complete segment and history file pg_receivewal leaves in
 * `<state>/wal` is pushed to every object-store repository (zstd, encrypted when backups are,
 * wal.ts), and the local archive becomes a cache: segments every repository holds are removed
 * once more than `backup.walCacheSegments` newer ones are there. A repository that fails is
 * retried on the next tick; nothing is evicted locally that is not stored everywhere.
 */
export class WalShipper {
  private readonly shipped = new Map<string, Set<string>>()
  rawBytes = 0
  storedBytes = 0

  constructor(
    private readonly o: { walDir: string; repos: S3Repository[]; sysid: string; encryption?: WalEncryption | undefined; cacheSegments: number },
  ) {}

  /** What each repository already holds (after a restart, nothing is pushed twice). */
  async init(): Promise<void> {
    for (const r of this.o.repos) this.shipped.set(r.name, new Set((await listRemoteWal(r, this.o.sysid)).keys()))
  }

  /** One pass: push what is missing, then trim the cache. Throws the first repository error after trying all. */
  async tick(): Promise<{ pushed: string[]; evicted: string[] }> {
    const names = (await fsp.readdir(this.o.walDir).catch(() => [] as string[])).filter(isShippable).sort()
    const pushed: string[] = []
    let firstErr: unknown
    for (const r of this.o.repos) {
      const have = this.shipped.get(r.name) ?? new Set<string>()
      this.shipped.set(r.name, have)
      for (const n of names) {
        if (have.has(n)) continue
        try {
          const s = await pushWalFile(r, this.o.walDir, n, this.o.sysid, this.o.encryption)
          this.rawBytes += s.rawBytes
          this.storedBytes += s.storedBytes
          have.add(n)
          pushed.push(`${r.name}:${n}`)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue // evicted/moved meanwhile
          firstErr ??= err
          break // in order: never a gap before a later segment in this repository
        }
      }
    }
    const evicted = await this.trim(names)
    if (firstErr) throw firstErr
    return { pushed, evicted }
  }

  private async trim(names: string[]): Promise<string[]> {
    const segs = names.filter((n) => parseSegmentName(n) !== undefined)
    // The oldest beyond the bound, and only those every repository holds.
    const victims = segs.slice(0, Math.max(0, segs.length - this.o.cacheSegments)).filter((n) => this.isShipped(n))
    for (const v of victims) await fsp.rm(path.join(this.o.walDir, v), { force: true })
    return victims
  }

  isShipped(name: string): boolean {
    return this.o.repos.every((r) => this.shipped.get(r.name)?.has(name))
  }
}
