import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { isProcessAliveSync } from '../platform/pids.js'

/**
 * Who may make failover decisions for a flock. Exactly one holder at a time; a holder that
 * stops renewing loses the lease after its TTL. This is the seam where a distributed store
 * plugs in for flocks spread over several hosts (docs/replication.md, "Leadership"): an etcd
 * implementation maps acquire → a lease + a create-if-absent transaction on the leader key,
 * renew → lease keep-alive, release → lease revoke, watch → a watch on the key. MagFlock never
 * implements consensus itself.
 *
 * Contract:
 *  - `acquire(ttlMs)` resolves true when this holder now holds the lease (also when it
 *    already did), false when another live holder does. It never waits.
 *  - `renew()` extends a held lease by its TTL; resolves false when the lease was lost
 *    (expired and taken). A caller that gets false must stop acting at once.
 *  - `release()` gives the lease up (idempotent).
 *  - `watch(cb)` calls cb with the holder id whenever it changes (undefined = nobody).
 */
export interface Leadership {
  readonly holderId: string
  acquire(ttlMs: number): Promise<boolean>
  renew(): Promise<boolean>
  release(): Promise<void>
  watch(cb: (holder: string | undefined) => void): () => void
  /** The current holder as this implementation last saw it. */
  current(): Promise<string | undefined>
}

interface Lease {
  holder: string
  pid: number
  expiresAt: number
}

function parseLease(v: unknown): Lease {
  const o = v as Partial<Lease>
  if (typeof o?.holder !== 'string' || typeof o.pid !== 'number' || typeof o.expiresAt !== 'number') throw new Error('bad lease')
  return o as Lease
}


/**
 * A lease in a JSON file of the state directory, for all monitors on this host (one kernel
 * per state dir normally; the kernel lock already enforces that, the lease is defence in
 * depth and the same shape as the etcd one). Read-modify-write happens under a mkdir mutex,
 * which is atomic on every local filesystem. A lease whose holder process is gone is free at
 * once: on one host we can know that for certain, which a DCS cannot.
 */
export class FileLeadership implements Leadership {
  private ttlMs = 5000
  private readonly mutex: string

  constructor(
    private readonly file: string,
    readonly holderId: string,
    private readonly clock: () => number = Date.now,
    private readonly pid: number = process.pid,
  ) {
    this.mutex = `${file}.lock`
  }

  private async withMutex<T>(fn: () => Promise<T>): Promise<T> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true })
    for (let i = 0; ; i++) {
      try {
        await fsp.mkdir(this.mutex)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // A mutex older than 5 s belongs to a process that died inside the critical section.
        const st = await fsp.stat(this.mutex).catch(() => undefined)
        if (st && Date.now() - st.mtimeMs > 5000) await fsp.rm(this.mutex, { recursive: true, force: true })
        if (i > 500) throw new Error(`leadership mutex ${this.mutex} stuck`, { cause: err })
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    try {
      return await fn()
    } finally {
      await fsp.rm(this.mutex, { recursive: true, force: true })
    }
  }

  private async read(): Promise<Lease | undefined> {
    try {
      return await readJsonFile(this.file, parseLease)
    } catch {
      return undefined
    }
  }

  private live(l: Lease | undefined): l is Lease {
    return !!l && l.expiresAt > this.clock() && isProcessAliveSync(l.pid)
  }

  async acquire(ttlMs: number): Promise<boolean> {
    this.ttlMs = ttlMs
    return this.withMutex(async () => {
      const cur = await this.read()
      if (this.live(cur) && cur.holder !== this.holderId) return false
      await writeJsonAtomic(this.file, { holder: this.holderId, pid: this.pid, expiresAt: this.clock() + ttlMs } satisfies Lease)
      return true
    })
  }

  async renew(): Promise<boolean> {
    return this.withMutex(async () => {
      const cur = await this.read()
      if (!cur || cur.holder !== this.holderId) return false
      if (!this.live(cur)) return false
      await writeJsonAtomic(this.file, { ...cur, expiresAt: this.clock() + this.ttlMs })
      return true
    })
  }

  async release(): Promise<void> {
    await this.withMutex(async () => {
      const cur = await this.read()
      if (cur?.holder === this.holderId) await fsp.rm(this.file, { force: true })
    })
  }

  async current(): Promise<string | undefined> {
    const cur = await this.read()
    return this.live(cur) ? cur.holder : undefined
  }

  watch(cb: (holder: string | undefined) => void, intervalMs = 500): () => void {
    let last: string | undefined | null = null
    let stopped = false
    const tick = async () => {
      if (stopped) return
      const h = await this.current()
      if (h !== last) {
        last = h
        cb(h)
      }
    }
    void tick()
    const t = setInterval(() => void tick(), intervalMs)
    t.unref()
    return () => {
      stopped = true
      clearInterval(t)
    }
  }
}

/** In-process leadership for tests and single-monitor setups. */
export class MemoryLeadership implements Leadership {
  private static holders = new Map<string, { holder: string; expiresAt: number }>()
  private ttlMs = 5000
  private static watchers = new Map<string, Set<(h: string | undefined) => void>>()

  constructor(
    private readonly key: string,
    readonly holderId: string,
    private readonly clock: () => number = Date.now,
  ) {}

  private cur(): string | undefined {
    const h = MemoryLeadership.holders.get(this.key)
    return h && h.expiresAt > this.clock() ? h.holder : undefined
  }

  private notify(): void {
    const h = this.cur()
    for (const w of this.watchers()) w(h)
  }

  async acquire(ttlMs: number): Promise<boolean> {
    this.ttlMs = ttlMs
    const h = this.cur()
    if (h && h !== this.holderId) return false
    MemoryLeadership.holders.set(this.key, { holder: this.holderId, expiresAt: this.clock() + ttlMs })
    if (h !== this.holderId) this.notify()
    return true
  }

  async renew(): Promise<boolean> {
    if (this.cur() !== this.holderId) return false
    MemoryLeadership.holders.set(this.key, { holder: this.holderId, expiresAt: this.clock() + this.ttlMs })
    return true
  }

  async release(): Promise<void> {
    if (this.cur() === this.holderId) {
      MemoryLeadership.holders.delete(this.key)
      this.notify()
    }
  }

  async current(): Promise<string | undefined> {
    return this.cur()
  }

  private watchers(): Set<(h: string | undefined) => void> {
    let s = MemoryLeadership.watchers.get(this.key)
    if (!s) MemoryLeadership.watchers.set(this.key, (s = new Set()))
    return s
  }

  watch(cb: (holder: string | undefined) => void): () => void {
    const s = this.watchers()
    s.add(cb)
    cb(this.cur())
    return () => s.delete(cb)
  }
}
