import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogicalBackup } from '../../../src/backup/logical.js'
import type { BackupManifest } from '../../../src/backup/manifest.js'
import { assertLayout, verifyBackup } from '../../../src/backup/verify.js'
import { isMagflockError } from '../../../src/errors/index.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'

/**
 * `backup verify` on a real logical backup (pg_dump -Fd), each case on its own copy of it:
 * a missing, a resized, an extra and an altered file are each reported by name, and the
 * restore's cheap layout check refuses the same backups before writing anything.
 */
const bins = findPgBinaries()
const runAs = postgresRunAs()
const tmp = tempDir('mf-bkv-')
let src: TestPostgres
let pristine: string
let manifest: BackupManifest
let n = 0

/** A copy of the pristine backups dir, to damage. */
async function copy(): Promise<string> {
  const to = path.join(tmp.dir, `case${++n}`)
  await fsp.cp(pristine, to, { recursive: true })
  return to
}
/** The largest data file of the backup (a table's data, not the small toc). */
const biggest = () => [...manifest.files].sort((a, b) => b.size - a.size)[0]!

beforeAll(async () => {
  src = await startTestPostgres()
  await src.query('create database app')
  await src.query(`create table items(id int primary key, v text); insert into items select g, md5(g::text) from generate_series(1, 5000) g`, [], 'app')
  pristine = path.join(tmp.dir, 'backups')
  manifest = await createLogicalBackup({ backupsDir: pristine, conn: src.connection(), database: 'app', bins, runAs })
  expect(manifest.files.length).toBeGreaterThan(1)
})
afterAll(async () => {
  await src?.stop()
  tmp.cleanup()
})

describe('backup verify', () => {
  it('passes an untouched backup, hashing every file', async () => {
    const v = await verifyBackup({ backupsDir: pristine, id: manifest.id })
    expect(v).toMatchObject({ ok: true, problems: [], filesChecked: manifest.files.length })
    expect(v.bytesChecked).toBe(manifest.files.reduce((s, f) => s + f.size, 0))
  })

  it('reports a missing file by name', async () => {
    const d = await copy()
    const gone = biggest().path
    await fsp.rm(path.join(d, manifest.id, gone))
    const v = await verifyBackup({ backupsDir: d, id: manifest.id })
    expect(v.ok).toBe(false)
    expect(v.problems).toEqual([{ file: gone, reason: 'missing' }])
  })

  it('reports a resized file with both sizes', async () => {
    const d = await copy()
    const f = biggest()
    await fsp.appendFile(path.join(d, manifest.id, f.path), 'x')
    const v = await verifyBackup({ backupsDir: d, id: manifest.id })
    expect(v.ok).toBe(false)
    expect(v.problems).toEqual([{ file: f.path, reason: `size ${f.size + 1} != ${f.size} in the manifest` }])
  })

  it('reports an extra file that the manifest does not list', async () => {
    const d = await copy()
    const extra = path.join(path.dirname(biggest().path), 'planted.dat')
    await fsp.writeFile(path.join(d, manifest.id, extra), 'not part of the backup')
    const v = await verifyBackup({ backupsDir: d, id: manifest.id })
    expect(v.ok).toBe(false)
    expect(v.problems).toEqual([{ file: extra, reason: 'not in the manifest' }])
  })

  it('reports a file altered in place (same size, one flipped bit)', async () => {
    const d = await copy()
    const f = biggest()
    const p = path.join(d, manifest.id, f.path)
    const buf = await fsp.readFile(p)
    buf[Math.floor(buf.length / 2)]! ^= 0x01
    await fsp.writeFile(p, buf)
    const v = await verifyBackup({ backupsDir: d, id: manifest.id })
    expect(v.problems).toEqual([{ file: f.path, reason: 'sha256 does not match the manifest' }])
  })

  it('the layout check a restore runs first refuses a truncated file with E_BACKUP_VERIFY_FAILED naming it', async () => {
    const d = await copy()
    const f = biggest()
    const dir = path.join(d, manifest.id)
    await fsp.truncate(path.join(dir, f.path), 1)
    const err = await assertLayout(dir, manifest).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isMagflockError(err) && err.code).toBe('E_BACKUP_VERIFY_FAILED')
    expect((err as Error).message).toContain(f.path)
    await expect(assertLayout(path.join(pristine, manifest.id), manifest)).resolves.toBeUndefined()
  })
})
