import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { checkDrift, type AppliedRow } from '../../../src/migrations/drift.js'
import { hashMigration, parseFileName, type MigrationFile } from '../../../src/migrations/files.js'
import { lintMigration } from '../../../src/migrations/lint.js'
import { newMigration } from '../../../src/migrations/new.js'

function file(fileName: string, sql: string): MigrationFile {
  const p = parseFileName(fileName)!
  return { id: p.id, name: p.name, fileName, path: `/m/${fileName}`, type: p.type, contents: sql, sql, hash: hashMigration(fileName, sql), transactional: !sql.includes('-- postgres-migrations disable-transaction') }
}
const row = (f: MigrationFile, over: Partial<AppliedRow> = {}): AppliedRow => ({ id: f.id, name: f.name, hash: f.hash, executedAt: '2026-01-01 00:00:00', ...over })

describe('parseFileName', () => {
  it('follows postgres-migrations: id, optional separator, name', () => {
    expect(parseFileName('00012_add-users.sql')).toMatchObject({ id: 12, name: 'add-users', type: 'sql' })
    expect(parseFileName('3-seed.JS')).toMatchObject({ id: 3, name: 'seed', type: 'js' })
    expect(parseFileName('7.sql')).toMatchObject({ id: 7, name: '7.sql' })
    expect(parseFileName('readme.sql')).toBeUndefined()
  })
})

describe('lintMigration', () => {
  const nt = '-- postgres-migrations disable-transaction\n'
  it('accepts a one-statement disable-transaction file', () => {
    expect(lintMigration(file('2_i.sql', `${nt}CREATE INDEX CONCURRENTLY i ON t (v);\n`))).toEqual([])
  })
  it('refuses a disable-transaction file with two statements', () => {
    const p = lintMigration(file('2_i.sql', `${nt}CREATE INDEX CONCURRENTLY a ON t (v);\nCREATE INDEX CONCURRENTLY b ON t (w);\n`))
    expect(p[0]?.problem).toContain('2 statements')
  })
  it('refuses CONCURRENTLY inside a transactional file', () => {
    expect(lintMigration(file('2_i.sql', 'CREATE INDEX CONCURRENTLY a ON t (v);'))[0]?.problem).toContain('CONCURRENTLY')
  })
  it('flags a near-miss marker that the library would ignore', () => {
    const p = lintMigration(file('2_i.sql', '--postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY a ON t (v);'))
    expect(p[0]?.problem).toContain('not recognised')
  })
  it('does not mistake words in strings or comments for statements', () => {
    expect(lintMigration(file('2_x.sql', "-- CONCURRENTLY later\nINSERT INTO notes VALUES ('VACUUM; CONCURRENTLY');"))).toEqual([])
  })
})

describe('checkDrift', () => {
  const a = file('00001_a.sql', 'CREATE TABLE a (id int);\n')
  const b = file('00002_b.sql', 'CREATE TABLE b (id int);\n')
  const c = file('00003_c.sql', 'CREATE TABLE c (id int);\n')

  it('is clean when files and rows agree, ignoring the library row 0', () => {
    expect(checkDrift([a, b, c], [{ id: 0, name: 'create-migrations-table', hash: 'x', executedAt: null }, row(a), row(b)]).ok).toBe(true)
  })
  it('reports an edited file with both hashes', () => {
    const edited = file('00002_b.sql', 'CREATE TABLE b (id bigint);\n')
    const r = checkDrift([a, edited], [row(a), row(b)])
    expect(r.items).toEqual([expect.objectContaining({ kind: 'edited', cause: 'content', recordedHash: b.hash, currentHash: edited.hash })])
  })
  it('recognises a CRLF-only change', () => {
    const crlf = file('00002_b.sql', b.sql.replace(/\n/g, '\r\n'))
    expect(checkDrift([a, crlf], [row(a), row(b)]).items[0]?.cause).toBe('line-endings')
  })
  it('recognises a rename with the same content', () => {
    const renamed = file('00002_bee.sql', b.sql)
    const r = checkDrift([a, renamed], [row(a), row(b)])
    expect(r.items[0]).toMatchObject({ kind: 'edited', cause: 'renamed' })
  })
  it('reports an applied file that is missing', () => {
    expect(checkDrift([a], [row(a), row(b)]).items).toEqual([expect.objectContaining({ kind: 'missing', id: 2 })])
  })
  it('reports a gap once for a range', () => {
    const e = file('00005_e.sql', 'SELECT 1;')
    const r = checkDrift([a, e], [row(a)])
    expect(r.items).toEqual([expect.objectContaining({ kind: 'gap', id: 2, file: '00005_e.sql' })])
    expect(r.items[0]?.detail).toContain('2–4')
  })
  it('reports duplicate ids and bad names passed in as file problems', () => {
    const r = checkDrift([a], [], [
      { fileName: '00001_other.sql', reason: 'id 1 is also used by 00001_a.sql' },
      { fileName: 'x.sql', reason: 'the name does not start with a number' },
    ])
    expect(r.items.map((i) => i.kind)).toEqual(['duplicate', 'invalid-name'])
  })
})

describe('newMigration', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-new-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('writes the next number with the folder padding, from the template', async () => {
    writeFileSync(path.join(dir, '00007_old.sql'), 'SELECT 1;')
    const res = await newMigration({ dir, name: 'add-users', now: new Date('2026-01-02T03:04:05Z') })
    expect(res).toMatchObject({ id: 8, file: '00008_add-users.sql' })
    const text = readFileSync(res.path, 'utf8')
    expect(text).toContain('Migration 8: add-users')
    expect(text).toContain('2026-01-02T03:04:05.000Z')
    const js = await newMigration({ dir, name: 'seed', type: 'js' })
    expect(js.file).toBe('00009_seed.js')
    expect(readFileSync(js.path, 'utf8')).toContain('export const generateSql')
  })

  it('refuses a name with spaces or slashes', async () => {
    await expect(newMigration({ dir, name: '../evil' })).rejects.toMatchObject({ code: 'E_MIGRATION_NAME_INVALID' })
    await expect(newMigration({ dir, name: 'two words' })).rejects.toMatchObject({ code: 'E_MIGRATION_NAME_INVALID' })
  })
})
