import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { BackupScheduler, lagDecision } from '../../../src/daemon/components/backup.js'
import { parseCron } from '../../../src/backup/cron.js'
import { RateMeter, describeProgress, formatEta } from '../../../src/cli/backup-progress.js'
import { backupEventSchemas } from '../../../src/backup/events.js'

describe('wal-archiver lag decision', () => {
  it('alerts once per minute while above the threshold', () => {
    expect(lagDecision(10, 100, undefined, 0).alert).toBe(false)
    expect(lagDecision(200, 100, undefined, 0)).toMatchObject({ alert: true, sentence: expect.stringContaining('raising wal.archive_lagging') })
    expect(lagDecision(200, 100, 0, 30_000).alert).toBe(false)
    expect(lagDecision(200, 100, 0, 61_000).alert).toBe(true)
  })
})

describe('backup-scheduler', () => {
  it('runs when the clock passes the due minute, exports success metrics, counts failures', async () => {
    let now = new Date('2026-11-25T02:58:00Z')
    const reg = new Registry()
    const results: boolean[] = []
    let fail = false
    const s = new BackupScheduler({
      spec: parseCron('0 3 * * *'),
      now: () => now,
      metrics: reg,
      runBackup: async () => {
        if (fail) throw new Error('boom')
        return { id: 'b1', sizeBytes: 1234, seconds: 2.5 }
      },
      onResult: (r) => results.push(r.ok),
    })
    expect(await s.tick()).toBe('next backup at 2026-11-25T03:00:00.000Z')
    now = new Date('2026-11-25T03:00:10Z')
    expect(await s.tick()).toBe('scheduled backup b1 done in 2.5 s')
    const text = await reg.metrics()
    expect(text).toMatch(/magflock_backup_last_size_bytes 1234/)
    expect(text).toMatch(/magflock_backup_last_duration_seconds 2.5/)
    expect(text).toMatch(new RegExp(`magflock_backup_last_success_timestamp_seconds ${Math.floor(now.getTime() / 1000)}`))
    expect(s.nextDue()?.toISOString()).toBe('2026-11-26T03:00:00.000Z')
    fail = true
    now = new Date('2026-11-26T03:00:00Z')
    expect(await s.tick()).toBe('scheduled backup failed: E_INTERNAL')
    expect(await reg.metrics()).toMatch(/magflock_backup_failures_total 1/)
    expect(results).toEqual([true, false])
  })
})

describe('progress rate and ETA', () => {
  it('computes MiB/s and the time left from byte counts', () => {
    const m = new RateMeter()
    expect(describeProgress({ phase: 'backup', message: 'copying', bytesDone: 0, bytesTotal: 100 << 20 }, m, 0)).toBe('copying')
    expect(describeProgress({ phase: 'backup', message: 'copying', bytesDone: 10 << 20, bytesTotal: 100 << 20 }, m, 1000)).toBe('copying · 10.0 MiB/s · ETA 9s')
    expect(formatEta(125)).toBe('ETA 2m05s')
  })

  it('publishes only schema-valid event payloads', () => {
    expect(backupEventSchemas['backup.completed'].safeParse({ id: 'x', type: 'physical', bytes: 1, seconds: 1, encrypted: false, scheduled: true }).success).toBe(true)
    expect(backupEventSchemas['wal.archive_lagging'].safeParse({ lagBytes: 'a' }).success).toBe(false)
  })
})
