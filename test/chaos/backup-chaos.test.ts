import { promises as fsp, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitForArchived } from '../../src/backup/archiver.js'
import { kekFromSecret } from '../../src/backup/crypto.js'
import { createLogicalBackup, restoreLogical } from '../../src/backup/logical.js'
import { cleanupIncomplete, listBackups, loadBackup, newBackupId } from '../../src/backup/manifest.js'
import { extractPhysical } from '../../src/backup/extract.js'
import { createPhysicalBackup } from '../../src/backup/physical.js'
import { pruneBackups } from '../../src/backup/retention.js'
import { restorePhysical } from '../../src/backup/restore.js'
import { verifyBackup } from '../../src/backup/verify.js'
import { listArchive } from '../../src/backup/wal.js'
import { postgresRunAs } from '../../src/platform/os-user.js'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import type { TestPostgres } from '../helpers/pg.js'
import { startBackupSource, type BackupSource } from '../helpers/backup-source.js'

const bins = findPgBinaries()
const runAs = postgresRunAs()
let src: TestPostgres
let source: BackupSource | undefined
let dir: string
let backupsDir: string
let walDir: string

/** Our own direct children named `comm` (we never kill by name, only this pid). */
function childPids(comm: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (name === comm && ppid === process.pid) out.push(Number(p))
    } catch {
      // process went away
    }
  }
  return out
}

async function flipByte(file: string, at: number) {
  const fh = await fsp.open(file, 'r+')
  try {
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, at)
    b[0] = b[0]! ^ 0x01
    await fh.write(b, 0, 1, at)
  } finally {
    await fh.close()
  }
}

beforeAll(async () => {
  source = await startBackupSource(5000, 'mf-bkchaos-')
  ;({ src, backupsDir, walDir, dir } = source)
})

afterAll(async () => {
  await source?.stop()
})

describe('backup chaos', () => {
  it('kill -9 of pg_dump mid-dump: no listed backup, the leftover is marked failed and refused', async () => {
    const locker = new pg.Client(src.connection('app'))
    await locker.connect()
    await locker.query('begin; lock table items in access exclusive mode')
    const p = createLogicalBackup({ backupsDir, conn: src.connection(), database: 'app', bins, runAs })
    let pids: number[] = []
    for (let i = 0; i < 100 && pids.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      pids = childPids('pg_dump')
    }
    expect(pids.length).toBe(1)
    process.kill(pids[0]!, 'SIGKILL')
    await expect(p).rejects.toMatchObject({ code: 'E_BACKUP_TOOL_FAILED' })
    await locker.query('rollback')
    await locker.end()
    const l = await listBackups(backupsDir)
    expect(l.complete).toEqual([])
    expect(l.incomplete.map((i) => i.state)).toEqual(['failed'])
    expect(l.incomplete[0]!.reason).toMatch(/SIGKILL/)
    await expect(restoreLogical({ backupsDir, id: l.incomplete[0]!.id, conn: src.connection(), bins, runAs })).rejects.toMatchObject({
      code: 'E_BACKUP_INCOMPLETE',
    })
  })

  it('a writer that died before the manifest (kernel kill -9) leaves an interrupted .partial that is never listed and gets cleaned', async () => {
    const id = newBackupId('physical')
    const dir = path.join(backupsDir, id + '.partial')
    await fsp.mkdir(path.join(dir, 'base'), { recursive: true })
    await fsp.writeFile(path.join(dir, 'base', 'base.tar.lz4'), 'half')
    await fsp.writeFile(path.join(dir, 'owner.json'), JSON.stringify({ pid: 2 ** 22 + 7 }))
    const l = await listBackups(backupsDir)
    expect(l.complete.map((b) => b.id)).not.toContain(id)
    expect(l.incomplete.find((i) => i.id === id)?.state).toBe('interrupted')
    const gone = await cleanupIncomplete(backupsDir)
    expect(gone.map((g) => g.id)).toContain(id)
    expect((await listBackups(backupsDir)).incomplete).toEqual([])
  })

  it('a flipped byte: verify names the file and both restores refuse before writing', async () => {
    const lm = await createLogicalBackup({ backupsDir, conn: src.connection(), database: 'app', bins, runAs })
    const dataFile = lm.files.find((f) => f.path.endsWith('.dat.gz'))!
    await flipByte(path.join(backupsDir, lm.id, dataFile.path), Math.floor(dataFile.size / 2))
    const v = await verifyBackup({ backupsDir, id: lm.id })
    expect(v.ok).toBe(false)
    expect(v.problems).toEqual([{ file: dataFile.path, reason: expect.stringMatching(/sha256/) }])
    await expect(restoreLogical({ backupsDir, id: lm.id, conn: src.connection(), targetDb: 'never', bins, runAs })).rejects.toMatchObject({
      code: 'E_BACKUP_VERIFY_FAILED',
      message: expect.stringContaining(dataFile.path),
    })
    expect((await src.query(`select 1 from pg_database where datname = 'never'`)).rowCount).toBe(0)

    const pm = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    const tar = path.join(backupsDir, pm.id, 'base', 'base.tar.lz4')
    await flipByte(tar, 5000)
    const target = path.join(dir, 'never', 'data')
    await expect(restorePhysical({ backupsDir, id: pm.id, dataDir: target, port: 1, bins, runAs })).rejects.toMatchObject({
      code: 'E_BACKUP_VERIFY_FAILED',
      message: expect.stringContaining('base/base.tar.lz4'),
    })
    await expect(fsp.access(target)).rejects.toThrow()
    await fsp.rm(path.join(backupsDir, pm.id), { recursive: true })
    await fsp.rm(path.join(backupsDir, lm.id), { recursive: true })
  })

  it('damage that lz4 and tar would extract without complaint is still caught while extracting; encrypted dumps too', { timeout: 120_000 }, async () => {
    // pg_wal.tar is an uncompressed tar: a flipped byte inside a WAL segment extracts "fine".
    const pm = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    const walTar = pm.files.find((f) => f.path === 'base/pg_wal.tar')!
    await flipByte(path.join(backupsDir, pm.id, walTar.path), Math.floor(walTar.size / 2))
    expect((await verifyBackup({ backupsDir, id: pm.id })).problems).toEqual([{ file: 'base/pg_wal.tar', reason: expect.stringMatching(/sha256/) }])
    const target = path.join(dir, 'never-wal', 'data')
    await expect(restorePhysical({ backupsDir, id: pm.id, dataDir: target, port: 1, bins, runAs })).rejects.toMatchObject({
      code: 'E_BACKUP_VERIFY_FAILED',
      message: expect.stringContaining('base/pg_wal.tar'),
    })
    // What was extracted is gone (and Postgres never started on it).
    await expect(fsp.access(path.dirname(target))).rejects.toThrow()
    // extractPhysical verifies by default (replica --from-backup relies on it).
    const scratch = path.join(dir, 'never-wal-2')
    await fsp.mkdir(scratch, { recursive: true })
    if (runAs) await fsp.chown(scratch, runAs.uid, runAs.gid)
    const { manifest } = await loadBackup(backupsDir, pm.id)
    await expect(extractPhysical({ dir: path.join(backupsDir, pm.id), manifest, dataKey: undefined, dataDir: scratch, runAs })).rejects.toMatchObject({
      code: 'E_BACKUP_VERIFY_FAILED',
      message: expect.stringContaining('base/pg_wal.tar'),
    })
    await fsp.rm(scratch, { recursive: true, force: true })
    await fsp.rm(path.join(backupsDir, pm.id), { recursive: true })

    const kek = kekFromSecret('chaos-kek')
    const lm = await createLogicalBackup({ backupsDir, conn: src.connection(), database: 'app', bins, runAs, encryption: { kek, secretName: 'backup.kek' } })
    const enc = lm.files.find((f) => f.path.endsWith('.dat.gz.mfenc'))!
    await flipByte(path.join(backupsDir, lm.id, enc.path), Math.floor(enc.size / 2))
    await expect(restoreLogical({ backupsDir, id: lm.id, conn: src.connection(), targetDb: 'never_enc', bins, runAs, kek })).rejects.toMatchObject({
      code: 'E_BACKUP_VERIFY_FAILED',
      message: expect.stringContaining(enc.path),
    })
    expect((await src.query(`select 1 from pg_database where datname = 'never_enc'`)).rowCount).toBe(0)
    await fsp.rm(path.join(backupsDir, lm.id), { recursive: true })
  })

  it('a WAL segment deleted from the archive: PITR names the missing segment', async () => {
    const m = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    let lsn = ''
    for (let i = 0; i < 3; i++) {
      await src.query(`insert into items select g, 'x' from generate_series(${10000 + i * 100}, ${10000 + i * 100 + 50}) g`, [], 'app')
      lsn = (await src.query<{ l: string }>('select pg_switch_wal()::text as l')).rows[0]!.l
    }
    await waitForArchived(walDir, lsn)
    const full = (await listArchive(walDir)).filter((s) => !s.partial)
    const victim = full[full.length - 2]!
    await fsp.rm(path.join(walDir, victim.name))
    const target = (await src.query<{ t: string }>('select now()::text as t')).rows[0]!.t
    const dataDir = path.join(dir, 'pitr-gap', 'data')
    await expect(restorePhysical({ backupsDir, id: m.id, dataDir, port: 1, bins, runAs, walDir, targetTime: target })).rejects.toMatchObject({
      code: 'E_BACKUP_WAL_MISSING',
      message: expect.stringContaining(victim.name),
    })
    await expect(fsp.access(dataDir)).rejects.toThrow()
  })

  it('prune keeps the WAL a kept backup needs and removes only older segments', async () => {
    await fsp.rm(backupsDir, { recursive: true, force: true })
    const old = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    const lsn = (await src.query<{ l: string }>('select pg_switch_wal()::text as l')).rows[0]!.l
    await waitForArchived(walDir, lsn)
    const kept = await createPhysicalBackup({ backupsDir, conn: src.connection(), bins, runAs })
    const dry = await pruneBackups({ backupsDir, walDir, policy: { keepLast: 1 }, dryRun: true })
    expect(dry.removed).toEqual([old.id])
    expect((await listBackups(backupsDir)).complete).toHaveLength(2)
    const res = await pruneBackups({ backupsDir, walDir, policy: { keepLast: 1 } })
    expect(res.kept.map((k) => k.id)).toEqual([kept.id])
    const { segmentNo } = await import('../../src/backup/wal.js')
    const remaining = await listArchive(walDir)
    expect(remaining.every((s) => s.segNo >= segmentNo(kept.startLsn))).toBe(true)
    expect(res.walRemoved.length).toBeGreaterThan(0)
    expect((await listBackups(backupsDir)).complete.map((b) => b.id)).toEqual([kept.id])
  })
})
