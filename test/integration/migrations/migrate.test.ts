import { readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrationStatus, runMigrations } from '../../../src/migrations/runner.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'
import { freshDb, generated, writeMigrations } from './fixtures.js'

let server: TestPostgres
const tmp = tempDir('mf-mig-')
let n = 0
const dir = (files: Record<string, string>) => writeMigrations(path.join(tmp.dir, `d${++n}`), files)

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
  return 'resolved'
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string; hint?: string; errorClass?: string; details?: Record<string, unknown> }> {
  try {
    await p
  } catch (err) {
    return err as never
  }
  throw new Error('expected a rejection')
}

beforeAll(async () => {
  server = await startTestPostgres()
})
afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

describe('runMigrations', () => {
  it('applies pending files in order, once, and a re-run applies nothing', async () => {
    const db = await freshDb(server)
    const d = dir(generated(5))
    const first = await runMigrations({ connection: server.connection(db), dir: d })
    expect(first.applied.map((m) => m.id)).toEqual([1, 2, 3, 4, 5])
    expect(first.applied[0]?.file).toBe('00001_create-t1.sql')
    const again = await runMigrations({ connection: server.url(db), dir: d })
    expect(again.applied).toEqual([])
    expect(again.alreadyApplied).toBe(5)
    const rows = await server.query<{ n: number }>('SELECT count(*)::int AS n FROM migrations WHERE id > 0', [], db)
    expect(rows.rows[0]?.n).toBe(5)
  })

  it('--dry-run lists what would run and applies nothing', async () => {
    const db = await freshDb(server)
    const d = dir(generated(3))
    const res = await runMigrations({ connection: server.connection(db), dir: d, dryRun: true })
    expect(res.pending.map((m) => m.file)).toEqual(['00001_create-t1.sql', '00002_create-t2.sql', '00003_create-t3.sql'])
    expect(res.applied).toEqual([])
    const t = await server.query<{ r: string | null }>("SELECT to_regclass('t1')::text AS r", [], db)
    expect(t.rows[0]?.r).toBeNull()
  })

  it('emits one progress event per applied migration', async () => {
    const db = await freshDb(server)
    const events: Array<{ phase: string; current?: number; total?: number }> = []
    await runMigrations({ connection: server.connection(db), dir: dir(generated(4)), onProgress: (e) => events.push(e) })
    const apply = events.filter((e) => e.phase === 'apply')
    expect(apply.map((e) => e.current)).toEqual([1, 2, 3, 4])
    expect(apply.every((e) => e.total === 4)).toBe(true)
  })

  it('rolls back a failing migration, stops there, and reports file, line, column and Postgres message', async () => {
    const db = await freshDb(server)
    const d = dir({
      '1_ok.sql': 'CREATE TABLE a (id int);\n',
      '2_bad.sql': 'CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\nSELECT nope FROM b;\n',
      '3_later.sql': 'CREATE TABLE c (id int);\n',
    })
    const err = await errorOf(runMigrations({ connection: server.connection(db), dir: d }))
    expect(err.code).toBe('E_MIGRATION_FAILED')
    expect(err.errorClass).toBe('aborted')
    expect(err.message).toContain('2_bad.sql')
    expect(err.message).toContain('line 3, column 8')
    expect(err.message).toContain('nope')
    expect(err.details).toMatchObject({ file: '2_bad.sql', line: 3, column: 8, sqlstate: '42703' })
    const t = await server.query<{ a: string | null; b: string | null; c: string | null }>(
      "SELECT to_regclass('a')::text AS a, to_regclass('b')::text AS b, to_regclass('c')::text AS c",
      [],
      db,
    )
    expect(t.rows[0]).toEqual({ a: 'a', b: null, c: null })
    const ids = await server.query<{ id: number }>('SELECT id FROM migrations ORDER BY id', [], db)
    expect(ids.rows.map((r) => r.id)).toEqual([0, 1])
    // Nothing is left behind: no open transaction, no lock.
    const idle = await server.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'magflock-migrate'",
      [db],
    )
    expect(idle.rows[0]?.n).toBe(0)
  })

  it('runs a disable-transaction CREATE INDEX CONCURRENTLY and leaves a valid index', async () => {
    const db = await freshDb(server)
    const d = dir({
      '1_create.sql': 'CREATE TABLE c (id int, v int);\nINSERT INTO c SELECT g, g % 10 FROM generate_series(1, 1000) g;\n',
      '2_index.sql': '-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY c_v_idx ON c (v);\n',
    })
    const res = await runMigrations({ connection: server.connection(db), dir: d })
    expect(res.applied.map((m) => [m.id, m.transactional])).toEqual([[1, true], [2, false]])
    const idx = await server.query<{ v: boolean }>("SELECT indisvalid AS v FROM pg_index WHERE indexrelid = 'c_v_idx'::regclass", [], db)
    expect(idx.rows[0]?.v).toBe(true)
  })

  it('refuses a disable-transaction file with two statements before running anything', async () => {
    const db = await freshDb(server)
    const d = dir({
      '1_create.sql': 'CREATE TABLE c (id int, v int);\n',
      '2_index.sql': '-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY c_v ON c (v);\nCREATE INDEX CONCURRENTLY c_id ON c (id);\n',
    })
    const err = await errorOf(runMigrations({ connection: server.connection(db), dir: d }))
    expect(err.code).toBe('E_MIGRATION_LINT')
    expect(err.message).toContain('2_index.sql')
    const t = await server.query<{ r: string | null }>("SELECT to_regclass('c')::text AS r", [], db)
    expect(t.rows[0]?.r).toBeNull()
  })

  it('refuses to re-run over an INVALID index left by a failed CREATE UNIQUE INDEX CONCURRENTLY', async () => {
    const db = await freshDb(server)
    const d = dir({
      '1_create.sql': 'CREATE TABLE c (id int, v int);\nINSERT INTO c SELECT g, g % 10 FROM generate_series(1, 100) g;\n',
      '2_index.sql': '-- postgres-migrations disable-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS c_v_uniq ON c (v);\n',
    })
    const first = await errorOf(runMigrations({ connection: server.connection(db), dir: d }))
    expect(first.code).toBe('E_MIGRATION_FAILED')
    expect(first.details).toMatchObject({ sqlstate: '23505', file: '2_index.sql' })
    // The library alone would now record 2 as applied ("IF NOT EXISTS" skips the invalid index).
    const second = await errorOf(runMigrations({ connection: server.connection(db), dir: d }))
    expect(second.code).toBe('E_MIGRATION_INVALID_INDEX')
    expect(second.message).toContain('c_v_uniq')
    const ids = await server.query<{ id: number }>('SELECT id FROM migrations ORDER BY id', [], db)
    expect(ids.rows.map((r) => r.id)).toEqual([0, 1])
  })

  it('runs a JS migration from an ESM package', async () => {
    const db = await freshDb(server)
    const d = dir({ '1_table.sql': 'CREATE TABLE j (id int);\n' })
    writeFileSync(path.join(d, 'package.json'), '{"type":"module"}\n')
    writeFileSync(path.join(d, '2_seed.js'), 'export const generateSql = () => "INSERT INTO j SELECT generate_series(1, 3);"\n')
    writeFileSync(path.join(d, 'notes.ts'), 'ignored\n')
    const res = await runMigrations({ connection: server.connection(db), dir: d })
    expect(res.applied.map((m) => m.file)).toEqual(['1_table.sql', '2_seed.js'])
    const r = await server.query<{ n: number }>('SELECT count(*)::int AS n FROM j', [], db)
    expect(r.rows[0]?.n).toBe(3)
    const st = await migrationStatus({ connection: server.connection(db), dir: d })
    expect(st.ok).toBe(true)
  })

  it('names a "migrations" table in another schema instead of failing obscurely', async () => {
    const db = await freshDb(server)
    await server.query('CREATE SCHEMA other; CREATE TABLE other.migrations (id int)', [], db)
    const err = await errorOf(runMigrations({ connection: server.connection(db), dir: dir(generated(1)) }))
    expect(err.code).toBe('E_MIGRATIONS_TABLE_CONFLICT')
    expect(err.message).toContain('other.migrations')
  })

  it('names an application table called migrations with the wrong columns', async () => {
    const db = await freshDb(server)
    await server.query('CREATE TABLE migrations (ticket text)', [], db)
    expect(await codeOf(runMigrations({ connection: server.connection(db), dir: dir(generated(1)) }))).toBe('E_MIGRATIONS_TABLE_CONFLICT')
  })

  it('gives up on a held lock after --lock-timeout and names the holder', async () => {
    const db = await freshDb(server)
    const holder = new pg.Client({ ...server.connection(db), application_name: 'someone-else' })
    await holder.connect()
    try {
      await holder.query('SELECT pg_advisory_lock(-8525285245963000605)')
      const pid = (await holder.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p
      const waits: string[] = []
      const err = await errorOf(
        runMigrations({ connection: server.connection(db), dir: dir(generated(1)), lockTimeoutMs: 300, onProgress: (e) => waits.push(e.message) }),
      )
      expect(err.code).toBe('E_MIGRATE_LOCK_TIMEOUT')
      expect(err.errorClass).toBe('deadline_exceeded')
      expect(err.message).toContain(`pid ${pid}`)
      expect(err.message).toContain('someone-else')
      expect(waits.some((w) => w.includes(`pid ${pid}`))).toBe(true)
    } finally {
      await holder.end()
    }
  })

  it('refuses a pg.Pool: it needs a dedicated connection', async () => {
    const pool = new pg.Pool(server.connection())
    try {
      expect(await codeOf(runMigrations({ connection: pool as never, dir: dir(generated(1)) }))).toBe('E_MIGRATE_POOL_REJECTED')
    } finally {
      await pool.end()
    }
  })

  it('applies every migration exactly once when runs race in one process', async () => {
    const db = await freshDb(server)
    const d = dir(generated(30))
    const results = await Promise.all(Array.from({ length: 6 }, () => runMigrations({ connection: server.connection(db), dir: d })))
    expect(results.reduce((s, r) => s + r.applied.length, 0)).toBe(30)
    const r = await server.query<{ n: number; d: number }>('SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM migrations WHERE id > 0', [], db)
    expect(r.rows[0]).toEqual({ n: 30, d: 30 })
    const locks = await server.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'", [])
    expect(locks.rows[0]?.n).toBe(0)
  })

  it('reports a missing database with E_MIGRATE_CONNECT, without the password', async () => {
    const err = await errorOf(runMigrations({ connection: server.url('does_not_exist'), dir: dir(generated(1)) }))
    expect(err.code).toBe('E_MIGRATE_CONNECT')
    expect(err.message).not.toContain(server.password)
  })
})

describe('drift', () => {
  async function applied(files: Record<string, string>): Promise<{ db: string; d: string }> {
    const db = await freshDb(server)
    const d = dir(files)
    await runMigrations({ connection: server.connection(db), dir: d })
    return { db, d }
  }

  it('reports an applied file edited afterwards, and migrate refuses with the report', async () => {
    const { db, d } = await applied(generated(3))
    writeFileSync(path.join(d, '00002_create-t2.sql'), readFileSync(path.join(d, '00002_create-t2.sql'), 'utf8') + '-- edited\n')
    writeMigrations(d, generated(1, 4))
    const st = await migrationStatus({ connection: server.connection(db), dir: d })
    expect(st.ok).toBe(false)
    expect(st.drift).toEqual([expect.objectContaining({ kind: 'edited', file: '00002_create-t2.sql', cause: 'content' })])
    expect(st.pending.map((p) => p.id)).toEqual([4])
    const err = await errorOf(runMigrations({ connection: server.connection(db), dir: d }))
    expect(err.code).toBe('E_MIGRATION_DRIFT')
    expect((err.details?.drift as unknown[]).length).toBe(1)
    const t = await server.query<{ r: string | null }>("SELECT to_regclass('t4')::text AS r", [], db)
    expect(t.rows[0]?.r).toBeNull()
  })

  it('says when only the line endings changed (CRLF)', async () => {
    const { db, d } = await applied(generated(2))
    const f = path.join(d, '00001_create-t1.sql')
    writeFileSync(f, readFileSync(f, 'utf8').replace(/\n/g, '\r\n'))
    const st = await migrationStatus({ connection: server.connection(db), dir: d })
    expect(st.drift).toEqual([expect.objectContaining({ kind: 'edited', cause: 'line-endings' })])
    expect(st.drift[0]?.detail).toContain('CRLF')
  })

  it('reports an applied file that was deleted (the library does not notice)', async () => {
    const { db, d } = await applied(generated(3))
    unlinkSync(path.join(d, '00003_create-t3.sql'))
    const st = await migrationStatus({ connection: server.connection(db), dir: d })
    expect(st.drift).toEqual([expect.objectContaining({ kind: 'missing', id: 3 })])
    expect(st.applied.find((a) => a.id === 3)?.file).toBeNull()
    expect(await codeOf(runMigrations({ connection: server.connection(db), dir: d }))).toBe('E_MIGRATION_DRIFT')
  })

  it('reports a gap in numbering with the files around it', async () => {
    const { db, d } = await applied(generated(2))
    writeMigrations(d, { '00004_next.sql': 'SELECT 1;\n' })
    const st = await migrationStatus({ connection: server.connection(db), dir: d })
    expect(st.drift).toEqual([expect.objectContaining({ kind: 'gap', id: 3, file: '00004_next.sql' })])
    expect(st.drift[0]?.detail).toContain('00002_create-t2.sql')
    expect(await codeOf(runMigrations({ connection: server.connection(db), dir: d }))).toBe('E_MIGRATION_DRIFT')
  })

  it('lists applied (id, name, hash, applied at) and pending', async () => {
    const { db, d } = await applied(generated(2))
    writeMigrations(d, generated(1, 3))
    const st = await migrationStatus({ connection: server.connection(db), dir: d })
    expect(st.ok).toBe(true)
    expect(st.applied.map((a) => [a.id, a.name, a.file])).toEqual([
      [1, 'create-t1', '00001_create-t1.sql'],
      [2, 'create-t2', '00002_create-t2.sql'],
    ])
    expect(st.applied[0]?.hash).toMatch(/^[0-9a-f]{40}$/)
    expect(st.applied[0]?.appliedAt).toMatch(/^\d{4}-\d\d-\d\d/)
    expect(st.pending.map((p) => p.file)).toEqual(['00003_create-t3.sql'])
    rmSync(d, { recursive: true })
  })
})
