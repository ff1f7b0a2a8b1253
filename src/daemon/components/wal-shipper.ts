import { idleHandle, type ComponentHandle } from '../../kernel/component.js'
import { kekSecretName, loadKek } from '../../backup/keys.js'
import { openRemotes } from '../../backup/repository/index.js'
import type { S3Repository } from '../../backup/repository/s3.js'
import { WalShipper } from '../../backup/repository/shipper.js'
import { withClient } from '../../backup/sql.js'
import { counterOn, gaugeOn } from '../../telemetry/metrics.js'
import { defineComponent } from '../component.js'

/**
 * `wal-shipper`: pushes the WAL archive to every object-store repository
 * (src/backup/repository/shipper.ts), idle when none is configured.
 */
export const walShipperComponent = defineComponent({
  name: 'wal-shipper',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 10, windowMs: 300_000 },
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services
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
