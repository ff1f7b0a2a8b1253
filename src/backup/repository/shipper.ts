import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { defineComponent, idleHandle, type ComponentHandle } from '../../kernel/component.js'
import type { KernelServices } from '../../kernel/services.js'
import { counterOn, gaugeOn } from '../../telemetry/metrics.js'
import { kekSecretName, loadKek } from '../keys.js'
import { withClient } from '../sql.js'
import { parseSegmentName } from '../wal.js'
import { openRemotes } from './index.js'
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

export const walShipperComponent = defineComponent<{ services: KernelServices }>({
  name: 'wal-shipper',
  dependsOn: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 10, windowMs: 300_000 },
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services.services
    const cfg = k.config().backup
    if (!cfg.walArchiving || cfg.repositories.length === 0) {
      return idleHandle('no object-store repository configured')
    }
    // Set up lazily and retried every pass: a missing credential or an unreachable store must
    // not keep the kernel from booting (the detail says what is wrong; WAL stays local meanwhile).
    let repos: S3Repository[] = []
    let shipper: WalShipper | undefined
    const setUp = async (): Promise<WalShipper> => {
      repos = await openRemotes(k)
      const conn = await k.instances.primary().connection('postgres')
      const sysid = await withClient(conn, async (c) => (await c.query<{ s: string }>('select system_identifier::text as s from pg_control_system()')).rows[0]!.s)
      const encryption = cfg.encryptionKey ? { kek: await loadKek((n) => k.secrets.get(n), kekSecretName(cfg.encryptionKey)), secretName: kekSecretName(cfg.encryptionKey) } : undefined
      const s = new WalShipper({ walDir: k.layout.walDir, repos, sysid, encryption, cacheSegments: cfg.walCacheSegments })
      await s.init()
      return s
    }
    const pushedTotal = counterOn(ctx.metrics, { name: 'magflock_wal_shipped_files_total', help: 'WAL files pushed to object-store repositories.' })
    const ratio = gaugeOn(ctx.metrics, { name: 'magflock_wal_shipped_ratio', help: 'Stored bytes / raw bytes of the WAL pushed since start (compression).' })
    const failures = counterOn(ctx.metrics, { name: 'magflock_wal_ship_failures_total', help: 'WAL shipping passes that failed.' })
    let detail = `shipping WAL to ${cfg.repositories.map((r) => r.name).join(', ')}`
    let running = false
    const pass = async () => {
      if (!shipper) {
        for (const r of repos) r.destroy()
        shipper = await setUp()
      }
      const r = await shipper.tick()
      pushedTotal.inc(r.pushed.length)
      if (shipper.rawBytes) ratio.set(shipper.storedBytes / shipper.rawBytes)
      detail = `shipped ${r.pushed.length} file(s), ${r.evicted.length} evicted from the local cache`
    }
    const timer = setInterval(() => {
      if (running) return
      running = true
      void pass()
        .catch((err: unknown) => {
          failures.inc()
          detail = `shipping failed: ${(err as Error).message}`
          ctx.log.warn({ err: (err as Error).message }, 'WAL shipping failed; retrying')
        })
        .finally(() => {
          running = false
        })
    }, 2000)
    timer.unref()
    return {
      async stop() {
        clearInterval(timer)
        for (const r of repos) r.destroy()
      },
      health: () => ({ live: true, ready: true, detail }),
    }
  },
})
