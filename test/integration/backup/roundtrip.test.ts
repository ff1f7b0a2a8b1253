import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { freePort } from '../../../src/platform/ports.js'
import { run } from '../../../src/platform/process.js'
import { kekFromSecret } from '../../../src/backup/crypto.js'
import { listBackups } from '../../../src/backup/manifest.js'
import { createLogicalBackup, restoreLogical } from '../../../src/backup/logical.js'
import { createPhysicalBackup } from '../../../src/backup/physical.js'
import { restorePhysical } from '../../../src/backup/restore.js'
import { verifyBackup } from '../../../src/backup/verify.js'
import { waitForArchived } from '../../../src/backup/archiver.js'
import type { TestPostgres } from '../../helpers/pg.js'
import { startBackupSource, type BackupSource } from '../../helpers/backup-source.js'
import pg from 'pg'
import { waitFor } from '../../helpers/wait.js'

const bins = findPgBinaries()
const runAs = postgresRunAs()
let src: TestPostgres
let source: BackupSource | undefined
let dir: string
let backupsDir: string
let walDir: string
const restored: string[] = []

async function fingerprint(conn: pg.ClientConfig): Promise<{ n: number; md5: string }> {
  const c = new pg.Client(conn)
  await c.connect()
  try {
    const r = await c.query<{ n: string; md5: string }>(`select count(*)::text as n, md5(string_agg(id::text || ':' || v, ',' order by id)) as md5 from items`)
    return { n: Number(r.rows[0]!.n), md5: r.rows[0]!.md5 }
  } finally {
    await c.end()
  }
}

async function stopRestored(dataDir: string) {
  await run(bins.tool('pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], { runAs, reject: false })
}

beforeAll(async () => {
  source = await startBackupSource(20000, 'mf-bk-')
  ;({ src, backupsDir, walDir, dir } = source)
})

afterAll(async () => {
  for (const d of restored) await stopRestored(d)
  await source?.stop()
})

describe('physical backup (pg_basebackup, server lz4)', () => {
  it('round-trips: restored instance has equal data, written last, verified, data dir 0700', async () => {
    const before = await fingerprint(src.connection('app'))
    const events: string[] = []
    const m = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs, onProgress: (p) => events.push(p.phase) })
    expect(m.type).toBe('physical')
    expect(m.files.map((f) => f.path)).toEqual(expect.arrayContaining(['base/backup_manifest', 'base/base.tar.lz4']))
    expect(m.files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true)
    expect(m.databases).toContain('app')
    expect(events).toContain('done')
    const listing = await listBackups(backupsDir)
    expect(listing.complete.map((b) => b.id)).toContain(m.id)

    const v = await verifyBackup({ backupsDir, id: m.id, deep: true, bins, runAs })
    expect(v.problems).toEqual([])
    expect(v.deep).toBe(true)

    const dataDir = path.join(dir, 'r1', 'data')
    const port = await freePort()
    restored.push(dataDir)
    const r = await restorePhysical({ backupsDir, id: m.id, dataDir, port, bins, runAs, auth: { user: 'postgres', password: src.password } })
    expect(r.started).toBe(true)
    const st = await fsp.stat(dataDir)
    expect(st.mode & 0o777).toBe(0o700)
    if (runAs) expect(st.uid).toBe(runAs.uid)
    expect(await fingerprint({ ...src.connection('app'), port })).toEqual(before)
    await stopRestored(dataDir)

    // never over an existing data dir without force
    await expect(restorePhysical({ backupsDir, id: m.id, dataDir, port, bins, runAs, start: false })).rejects.toMatchObject({ code: 'E_BACKUP_TARGET_EXISTS' })
  })

  it('a source whose facts cannot be read stops pg_basebackup and leaves nothing behind', async () => {
    // pg_basebackup's replication connection does not name a database, the source-facts query does.
    const conn = { ...src.connection(), database: 'no_such_db' }
    const id = '20260101T000000Z-p-00dead'
    await expect(createPhysicalBackup({ backupsDir, conn, bins, runAs, id })).rejects.toMatchObject({ code: '3D000' })
    const left = (await fsp.readdir(backupsDir).catch(() => [] as string[])).filter((n) => n.startsWith(id))
    expect(left).toEqual([])
    // The copy it started is gone too: no base backup streams from the source any more. (Within
    // the test's 60 s: a timeout here then says which of the two lingers, not only "timed out".)
    let lingering = ''
    await waitFor('the aborted pg_basebackup to disconnect', async () => {
      const r = await src.query<{ n: string; what: string }>(
        `select ((select count(*) from pg_stat_progress_basebackup) + (select count(*) from pg_replication_slots where slot_name like 'pg_basebackup_%'))::text as n,
                concat_ws(', ', (select string_agg('progress: ' || phase, ', ') from pg_stat_progress_basebackup), (select string_agg('slot ' || slot_name || ' active ' || active, ', ') from pg_replication_slots where slot_name like 'pg_basebackup_%')) as what`,
      )
      lingering = r.rows[0]!.what
      return r.rows[0]!.n === '0'
    }, 40_000).catch((err: Error) => {
      throw new Error(`${err.message}; still there: ${lingering}`)
    })
  })

  it('encrypted round trip; the wrong key is refused before anything is written', async () => {
    const kek = kekFromSecret('correct horse battery staple')
    const m = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs, encryption: { kek, secretName: 'backup.kek' } })
    expect(m.encryption?.keyId).toMatch(/^[0-9a-f]{16}$/)
    expect(m.files.every((f) => f.path.endsWith('.mfenc'))).toBe(true)
    const raw = await fsp.readFile(path.join(backupsDir, m.id, 'base', 'base.tar.lz4.mfenc'))
    expect(raw.subarray(0, 4).toString()).toBe('MFE1')

    const bad = path.join(dir, 'r-badkey', 'data')
    await expect(
      restorePhysical({ backupsDir, id: m.id, dataDir: bad, port: 1, bins, runAs, kek: kekFromSecret('wrong') }),
    ).rejects.toMatchObject({ code: 'E_BACKUP_KEY_MISMATCH' })
    await expect(restorePhysical({ backupsDir, id: m.id, dataDir: bad, port: 1, bins, runAs })).rejects.toMatchObject({ code: 'E_BACKUP_KEY_MISSING' })
    await expect(fsp.access(path.dirname(bad))).rejects.toThrow()

    const dataDir = path.join(dir, 'r2', 'data')
    const port = await freePort()
    restored.push(dataDir)
    await restorePhysical({ backupsDir, id: m.id, dataDir, port, bins, runAs, kek, auth: { user: 'postgres', password: src.password } })
    expect((await fingerprint({ ...src.connection('app'), port })).n).toBe(20000)
    await stopRestored(dataDir)
  })

  it('PITR to a time between two writes: the first is present, the second absent', async () => {
    await src.query('create table marks(label text, at timestamptz default clock_timestamp())', [], 'app')
    const m = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    await src.query(`insert into marks(label) values ('first')`, [], 'app')
    await new Promise((r) => setTimeout(r, 300))
    const target = (await src.query<{ t: string }>(`select clock_timestamp()::text as t`)).rows[0]!.t
    await new Promise((r) => setTimeout(r, 300))
    await src.query(`insert into marks(label) values ('second')`, [], 'app')
    const lsn = (await src.query<{ l: string }>(`select pg_switch_wal()::text as l`)).rows[0]!.l
    await waitForArchived(walDir, lsn)

    const dataDir = path.join(dir, 'r3', 'data')
    const port = await freePort()
    restored.push(dataDir)
    const r = await restorePhysical({ backupsDir, id: m.id, dataDir, port, bins, runAs, walDir, targetTime: target, auth: { user: 'postgres', password: src.password } })
    expect(r.pitr?.targetTime).toBe(target)
    const c = new pg.Client({ ...src.connection('app'), port })
    await c.connect()
    try {
      const labels = (await c.query<{ label: string }>('select label from marks order by at')).rows.map((x) => x.label)
      expect(labels).toEqual(['first'])
      const rec = await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')
      expect(rec.rows[0]!.r).toBe(false)
      await c.query(`insert into marks(label) values ('writable')`)
    } finally {
      await c.end()
    }
    // Paused at the target and promoted on request: an end-of-recovery record, not a checkpoint
    // waited for before the first write (the checkpoint runs in the background afterwards).
    const log = await fsp.readFile(r.logFile, 'utf8')
    expect(log).toMatch(/pausing at the end of recovery/)
    expect(log).toMatch(/received promote request/)
    expect(log).not.toMatch(/checkpoint starting: end-of-recovery/)
    // The recovery-only settings are gone: a replica cloned from this instance must not inherit them.
    const autoConf = await fsp.readFile(path.join(dataDir, 'postgresql.auto.conf'), 'utf8')
    expect(autoConf).not.toMatch(/^(recovery_target\w*|restore_command|hot_standby)\s*=/m)
    await stopRestored(dataDir)
  })

  it('PITR of a cluster whose roles refuse our login (another cluster\'s passwords): still paused at the target, promoted, writable', async () => {
    await src.query('create table if not exists marks(label text, at timestamptz default clock_timestamp())', [], 'app')
    const m = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    await src.query(`insert into marks(label) values ('third')`, [], 'app')
    await new Promise((r) => setTimeout(r, 300))
    const target = (await src.query<{ t: string }>(`select clock_timestamp()::text as t`)).rows[0]!.t
    await new Promise((r) => setTimeout(r, 300))
    await src.query(`insert into marks(label) values ('fourth')`, [], 'app')
    const lsn = (await src.query<{ l: string }>(`select pg_switch_wal()::text as l`)).rows[0]!.l
    await waitForArchived(walDir, lsn)
    const dataDir = path.join(dir, 'r-otherauth', 'data')
    const port = await freePort()
    restored.push(dataDir)
    const r = await restorePhysical({ backupsDir, id: m.id, dataDir, port, bins, runAs, walDir, targetTime: target, auth: { user: 'postgres', password: 'not-this-clusters-password' }, timeoutMs: 120_000 })
    expect(r.started).toBe(true)
    const log = await fsp.readFile(r.logFile, 'utf8')
    expect(log).toMatch(/received promote request/)
    expect(log).not.toMatch(/checkpoint starting: end-of-recovery/)
    const c = new pg.Client({ ...src.connection('app'), port })
    await c.connect()
    try {
      const labels = (await c.query<{ label: string }>('select label from marks order by at')).rows.map((x) => x.label)
      expect(labels.at(-1)).toBe('third')
      expect((await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]!.r).toBe(false)
    } finally {
      await c.end()
    }
    await stopRestored(dataDir)
  })

  it('PITR to a time the archive never reaches: a clear error, not a paused instance, and nothing left', async () => {
    const m = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    await src.query(`insert into marks(label) values ('archived')`, [], 'app')
    const lsn = (await src.query<{ l: string }>(`select pg_switch_wal()::text as l`)).rows[0]!.l
    await waitForArchived(walDir, lsn)
    const dataDir = path.join(dir, 'r-unreached', 'data')
    const err = await restorePhysical({ backupsDir, id: m.id, dataDir, port: await freePort(), bins, runAs, walDir, targetTime: '2999-01-01 00:00:00+00', auth: { user: 'postgres', password: src.password }, timeoutMs: 120_000 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'E_BACKUP_TARGET_NOT_REACHED' })
    expect((err as Error).message).toMatch(/without reaching the target \(the last transaction replayed committed at \d{4}-/)
    await expect(fsp.access(path.dirname(dataDir))).rejects.toThrow()
  })
})

describe('logical backup (pg_dump -Fd -j2)', () => {
  it('round-trips into a new database and refuses an existing one without force', async () => {
    const before = await fingerprint(src.connection('app'))
    const m = await createLogicalBackup({ backupsDir, conn: src.connection(), database: 'app', bins, runAs })
    expect(m.type).toBe('logical')
    expect(m.files.some((f) => f.path === 'dump/toc.dat')).toBe(true)
    const r = await restoreLogical({ backupsDir, id: m.id, conn: src.connection(), targetDb: 'app_copy', bins, runAs })
    expect(r.database).toBe('app_copy')
    expect(await fingerprint(src.connection('app_copy'))).toEqual(before)
    await expect(restoreLogical({ backupsDir, id: m.id, conn: src.connection(), targetDb: 'app_copy', bins, runAs })).rejects.toMatchObject({
      code: 'E_BACKUP_TARGET_EXISTS',
    })
    const again = await restoreLogical({ backupsDir, id: m.id, conn: src.connection(), targetDb: 'app_copy', force: true, bins, runAs })
    expect(again.replaced).toBe(true)
  })

  it('encrypted logical round trip', async () => {
    const kek = kekFromSecret('k2')
    const m = await createLogicalBackup({ backupsDir, conn: src.connection(), database: 'app', bins, runAs, encryption: { kek, secretName: 'backup.kek' } })
    await restoreLogical({ backupsDir, id: m.id, conn: src.connection(), targetDb: 'app_enc', bins, runAs, kek })
    expect((await fingerprint(src.connection('app_enc'))).n).toBe((await fingerprint(src.connection('app'))).n)
  })
})
