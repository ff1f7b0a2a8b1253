import { appendFileSync, readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DISABLE_TRANSACTION_MARKER, type MigrationFile } from '../../../src/migrations/files.js'
import { lintMigration } from '../../../src/migrations/lint.js'
import { cli } from '../../helpers/cli.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'
import { freshDb } from './fixtures.js'

/**
 * A file written by `magflock migration new` (the BUILT CLI) runs in a transaction. The
 * template once quoted the disable-transaction marker in a comment, and postgres-migrations
 * matches the marker anywhere, so generated files ran outside a transaction.
 */
let server: TestPostgres
const tmp = tempDir('mf-migtpl-')

beforeAll(async () => {
  server = await startTestPostgres()
})
afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

describe('magflock migration new', () => {
  it('writes a file that, filled with two statements, migrates inside one transaction with its bookkeeping row', async () => {
    const made = await cli<{ path: string; file: string }>(['migration', 'new', 'two-statements', '--json'], { cwd: tmp.dir, env: { HOME: tmp.dir } })
    expect(made.exitCode).toBe(0)
    expect(made.json?.ok).toBe(true)
    const file = made.json?.ok ? made.json.data.path : ''
    expect(readFileSync(file, 'utf8')).not.toContain(DISABLE_TRANSACTION_MARKER)
    appendFileSync(file, 'CREATE TABLE tx_proof (id int PRIMARY KEY);\nINSERT INTO tx_proof VALUES (1);\n')

    const db = await freshDb(server, 'tpl')
    const r = await cli<{ applied: Array<{ id: number; transactional: boolean }> }>(['db', 'migrate', '--db-url', server.url(db), '--json'], { cwd: tmp.dir, env: { HOME: tmp.dir } })
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect(r.json?.ok && r.json.data.applied.map((m) => [m.id, m.transactional])).toEqual([[1, true]])
    // postgres-migrations wraps a transactional file as BEGIN; <file>; INSERT INTO migrations; COMMIT.
    // One transaction ⇒ the migration's row and its bookkeeping row carry the same xmin; a
    // file run outside a transaction commits before the bookkeeping insert (another xid).
    const xmin = await server.query<{ a: string; b: string }>(
      'SELECT (SELECT xmin::text FROM tx_proof WHERE id = 1) AS a, (SELECT xmin::text FROM migrations WHERE id = 1) AS b',
      [],
      db,
    )
    expect(xmin.rows[0]?.a).toBeTruthy()
    expect(xmin.rows[0]?.a).toBe(xmin.rows[0]?.b)
  })
})

describe('lint of the disable-transaction marker', () => {
  const file = (sql: string): MigrationFile => ({
    id: 1,
    name: 'x',
    fileName: '1_x.sql',
    path: '/nonexistent/1_x.sql',
    type: 'sql',
    contents: sql,
    sql,
    hash: '',
    transactional: !sql.includes(DISABLE_TRANSACTION_MARKER),
  })

  it('refuses the marker quoted inside a longer comment line (the old template), naming the line', () => {
    const old = `-- Migration 1: x\n-- with this exact line in it:\n--   ${DISABLE_TRANSACTION_MARKER}\nCREATE TABLE t (id int);\n`
    const p = lintMigration(file(old))
    expect(p).toHaveLength(1)
    expect(p[0]!.problem).toContain('line 3 quotes')
  })

  it('accepts the marker as a line of its own with one statement', () => {
    expect(lintMigration(file(`${DISABLE_TRANSACTION_MARKER}\nCREATE INDEX CONCURRENTLY i ON t (v);\n`))).toEqual([])
  })
})
