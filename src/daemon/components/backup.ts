import { promises as fsp } from 'node:fs'
import type { Counter, Gauge} from 'prom-client';
import { type Registry } from 'prom-client'
import { idleHandle, type ComponentHandle } from '../../kernel/component.js'
import { defineComponent } from '../component.js'
import { isMagflockError, type MagflockError } from '../../errors/index.js'
import { WAL_ARCHIVE_NO_SPACE } from '../../backup/errors.js'
import { WAL_SEGMENT_BYTES } from '../../backup/wal.js'
import { ARCHIVE_LOCK, archiveLag, dropTornPartials, startWalReceiver, type WalReceiver } from '../../backup/archiver.js'
import { nextRun, parseCron, type CronSpec } from '../../backup/cron.js'
import { createBackup } from '../../backup/service.js'
import { applyRetention, recoverUploadsOf } from '../../backup/repository/service.js'
import '../../backup/events.js'
import { counterOn, gaugeOn } from '../../telemetry/metrics.js'

/**
 * Kernel components of the backup area:
 *   wal-archiver      supervised pg_receivewal into <state>/wal with a replication slot,
 *                     archive-lag gauge, `wal.archive_lagging` / `wal.archiver_down` events;
 *   backup-scheduler  runs backup.schedule (cron, UTC) and exports last success time,
 *                     duration and size.
 * Both get the daemon's services (DaemonServices) like every component.
 */

const SEGMENT = Number(WAL_SEGMENT_BYTES)

/** Bytes free for an unprivileged writer on the filesystem of `dir` (0 when it cannot be read). */
async function freeBytes(dir: string): Promise<number> {
  const st = await fsp.statfs(dir).catch(() => undefined)
  return st ? Number(st.bavail) * Number(st.bsize) : 0
}

/** 256 MiB of WAL not yet in the archive is worth waking someone (the slot keeps it in pg_wal). */
export const LAG_ALERT_BYTES = 256 * 1024 * 1024

/** Pure: should we raise the lag alert now? One alert per `every` ms while the lag lasts. */
export function lagDecision(lagBytes: number, threshold: number, lastAlertAt: number | undefined, now: number, every = 60_000): { alert: boolean; sentence: string } {
  const mib = (lagBytes / 1048576).toFixed(1)
  if (lagBytes < threshold) return { alert: false, sentence: `archive lag ${mib} MiB, within ${threshold / 1048576} MiB` }
  if (lastAlertAt !== undefined && now - lastAlertAt < every) return { alert: false, sentence: `archive lag ${mib} MiB, alert already raised` }
  return { alert: true, sentence: `archive lag ${mib} MiB exceeds ${threshold / 1048576} MiB: raising wal.archive_lagging` }
}

export const walArchiverComponent = defineComponent({
  name: 'wal-archiver',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 10, windowMs: 300_000 },
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services
    if (!k.config().backup.walArchiving) {
      return idleHandle('disabled (backup.walArchiving=false)')
    }
    // The embedded build (postgres, initdb and pg_ctl only) has no pg_receivewal: the flock
    // runs without a WAL archive (no slot is created, so no WAL piles up) and says so here, in
    // `status` and in `doctor`; point-in-time recovery needs the full PostgreSQL tools.
    if (!k.bins.has('pg_receivewal')) {
      const detail = `off: no pg_receivewal in ${k.bins.binDir} (${k.bins.source} binaries); install PostgreSQL for WAL archiving and point-in-time recovery`
      ctx.log.warn({ binDir: k.bins.binDir }, detail)
      return idleHandle(detail)
    }
    const lagGauge = gaugeOn(ctx.metrics, { name: 'magflock_wal_archive_lag_bytes', help: 'Bytes of WAL written by the primary and not yet in the WAL archive.' })
    const upGauge = gaugeOn(ctx.metrics, { name: 'magflock_wal_archiver_up', help: '1 while pg_receivewal streams into the archive.' })
    // An in-place restore holds `wal-archive` while the primary is replaced; streaming starts
    // again once it has moved the old timeline's tail aside (restore.ts, service.ts).
    while (k.locks.holder(ARCHIVE_LOCK) !== undefined) {
      if (ctx.signal.aborted) throw new Error('stopped while waiting for an in-place restore')
      await new Promise((r) => setTimeout(r, 250))
    }
    const conn = await k.instances.primary().connection('postgres')
    const start = () => startWalReceiver({ walDir: k.layout.walDir, conn, bins: k.bins, runAs: k.runAs })
    let receiver: WalReceiver | undefined = await start()
    upGauge.set(1)
    let stopping = false
    let lastAlert: number | undefined
    let detail = `streaming into ${k.layout.walDir}`
    let noSpace: MagflockError | undefined
    // pg_receivewal stopping on a full archive filesystem is not a crash to restart in a loop:
    // the component says so (E_WAL_ARCHIVE_NO_SPACE, in status and as wal.archiver_down), waits
    // for space and starts it again; the slot keeps the WAL meanwhile, so the archive catches up.
    const supervise = (r: WalReceiver) => {
      void r.exited.then(async (e) => {
        upGauge.set(0)
        if (stopping) return
        const reason = `pg_receivewal exited (${e.signal ?? `exit ${e.exitCode}`})${r.stderrTail().trim() ? `: ${r.stderrTail().trim().split('\n').slice(-2).join(' | ')}` : ''}`
        const free = await freeBytes(k.layout.walDir)
        if (!/No space left on device/i.test(r.stderrTail()) && free >= SEGMENT) {
          ctx.events.publish('wal.archiver_down', { reason, restarts: 0 })
          ctx.fail(new Error(reason))
          return
        }
        receiver = undefined
        noSpace = WAL_ARCHIVE_NO_SPACE({ path: k.layout.walDir, freeBytes: free, neededBytes: SEGMENT })
        ctx.events.publish('wal.archiver_down', { reason: `${noSpace.code}: ${noSpace.message}`, restarts: 0 })
        ctx.log.error({ code: noSpace.code, path: k.layout.walDir, freeBytes: free }, noSpace.message)
        while (!stopping && (await freeBytes(k.layout.walDir)) < 2 * SEGMENT) await new Promise((res) => setTimeout(res, 2000))
        if (stopping) return
        try {
          const torn = await dropTornPartials(k.layout.walDir)
          if (torn.length) ctx.log.warn({ removed: torn }, 'removed a segment pg_receivewal could not pad on the full filesystem (it is streamed again)')
          receiver = await start()
        } catch (err) {
          ctx.fail(err instanceof Error ? err : new Error(String(err)))
          return
        }
        noSpace = undefined
        upGauge.set(1)
        ctx.log.info({ path: k.layout.walDir }, 'space is back: WAL archiving resumed')
        supervise(receiver)
      })
    }
    supervise(receiver)
    const timer = setInterval(() => {
      void (async () => {
        try {
          const lag = await archiveLag(await k.instances.primary().connection('postgres'), k.layout.walDir)
          lagGauge.set(lag.lagBytes)
          const d = lagDecision(lag.lagBytes, LAG_ALERT_BYTES, lastAlert, Date.now())
          detail = d.sentence
          if (d.alert) {
            lastAlert = Date.now()
            ctx.events.publish('wal.archive_lagging', { lagBytes: lag.lagBytes, thresholdBytes: LAG_ALERT_BYTES, slotActive: lag.slotActive })
            ctx.log.warn({ lagBytes: lag.lagBytes }, d.sentence)
          }
        } catch (err) {
          detail = `lag check failed: ${(err as Error).message}`
        }
      })()
    }, 10_000)
    timer.unref()
    return {
      async stop() {
        stopping = true
        clearInterval(timer)
        await receiver?.stop()
        receiver = undefined
      },
      health: () =>
        noSpace
          ? { live: true, ready: false, detail: `${noSpace.code}: ${noSpace.message} ${noSpace.hint ?? ''}`.trim() }
          : { live: receiver !== undefined, ready: receiver !== undefined, detail },
    }
  },
})

export interface SchedulerDeps {
  spec: CronSpec
  now(): Date
  runBackup(): Promise<{ id: string; sizeBytes: number; seconds: number }>
  metrics: Registry
  onResult?(r: { ok: true; id: string; sizeBytes: number; seconds: number } | { ok: false; code: string; message: string }): void
}

/**
 * The scheduler's loop, clock injected so tests move time instead of sleeping: `tick()` runs
 * a backup when the next due minute has passed (never two at once) and returns a sentence.
 */
export class BackupScheduler {
  private due: Date | undefined
  private running = false
  readonly lastSuccess: Gauge
  readonly lastDuration: Gauge
  readonly lastSize: Gauge
  readonly failures: Counter

  constructor(private readonly d: SchedulerDeps) {
    this.due = nextRun(d.spec, d.now())
    this.lastSuccess = gaugeOn(d.metrics, { name: 'magflock_backup_last_success_timestamp_seconds', help: 'Unix time of the last successful scheduled backup.' })
    this.lastDuration = gaugeOn(d.metrics, { name: 'magflock_backup_last_duration_seconds', help: 'Duration of the last successful scheduled backup.' })
    this.lastSize = gaugeOn(d.metrics, { name: 'magflock_backup_last_size_bytes', help: 'Size on disk of the last successful scheduled backup.' })
    this.failures = counterOn(d.metrics, { name: 'magflock_backup_failures_total', help: 'Scheduled backups that failed.' })
  }

  nextDue(): Date | undefined {
    return this.due
  }

  async tick(): Promise<string> {
    const now = this.d.now()
    if (!this.due) return 'no future run matches the schedule'
    if (now < this.due) return `next backup at ${this.due.toISOString()}`
    if (this.running) return 'previous scheduled backup still running; skipping this slot'
    this.running = true
    this.due = nextRun(this.d.spec, now)
    try {
      const r = await this.d.runBackup()
      this.lastSuccess.set(Math.floor(this.d.now().getTime() / 1000))
      this.lastDuration.set(r.seconds)
      this.lastSize.set(r.sizeBytes)
      this.d.onResult?.({ ok: true, ...r })
      return `scheduled backup ${r.id} done in ${r.seconds.toFixed(1)} s`
    } catch (err) {
      this.failures.inc()
      const code = isMagflockError(err) ? err.code : 'E_INTERNAL'
      this.d.onResult?.({ ok: false, code, message: (err as Error).message })
      return `scheduled backup failed: ${code}`
    } finally {
      this.running = false
    }
  }
}

export const backupSchedulerComponent = defineComponent({
  name: 'backup-scheduler',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 5, windowMs: 300_000 },
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services
    const cfg = k.config().backup
    // Uploads a killed kernel left half done: aborted and cleaned (or stored again), in the background.
    void recoverUploadsOf(k).then(
      (l) => {
        for (const r of l) {
          if (r.error) ctx.log.warn({ repository: r.repository, id: r.id, err: r.error }, 'could not clean up an interrupted upload; retrying at the next start')
          else ctx.log.warn({ repository: r.repository, id: r.id, outcome: r.outcome, abortedUploads: r.abortedUploads }, 'cleaned up an upload interrupted by a kernel that died')
        }
      },
      (err: unknown) => ctx.log.warn({ err: (err as Error).message }, 'could not look for interrupted uploads'),
    )
    if (!cfg.schedule) return idleHandle('no backup.schedule configured')
    const encrypt = Boolean(cfg.encryptionKey)
    const sched = new BackupScheduler({
      spec: parseCron(cfg.schedule),
      now: () => new Date(),
      metrics: ctx.metrics,
      runBackup: async () => {
        const r = await createBackup(k, { type: 'physical', encrypt })
        // Automatic retention, per repository, only after a backup succeeded (never on failure).
        for (const p of await applyRetention(k)) {
          if (p.error) ctx.log.warn({ repository: p.repository, err: p.error }, 'retention after the scheduled backup failed')
          else if (p.removed.length || p.walRemoved) ctx.log.info({ repository: p.repository, removed: p.removed, walRemoved: p.walRemoved }, 'retention applied')
        }
        return r
      },
      onResult: (r) => {
        if (r.ok) {
          ctx.events.publish('backup.completed', { id: r.id, type: 'physical', bytes: r.sizeBytes, seconds: r.seconds, encrypted: encrypt, scheduled: true })
          void ctx.audit.append({ actor: 'backup-scheduler', action: 'backup.create', target: r.id, result: 'ok', details: { scheduled: true, bytes: r.sizeBytes } }).catch(() => undefined) // counted in magflock_audit_write_failures_total
        } else {
          ctx.events.publish('backup.failed', { type: 'physical', code: r.code, message: r.message, scheduled: true })
          void ctx.audit.append({ actor: 'backup-scheduler', action: 'backup.create', result: 'error', details: { scheduled: true, code: r.code } }).catch(() => undefined)
        }
      },
    })
    let detail = `next backup at ${sched.nextDue()?.toISOString() ?? 'never'}`
    const timer = setInterval(() => {
      void sched.tick().then((s) => {
        detail = s
        if (s.startsWith('scheduled')) ctx.log.info(s)
      })
    }, 15_000)
    timer.unref()
    return {
      stop: async () => clearInterval(timer),
      health: () => ({ live: true, ready: true, detail }),
    }
  },
})
