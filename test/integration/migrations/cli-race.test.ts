import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../../src/platform/process.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'
import { cliShim, freshDb, generated, writeMigrations } from './fixtures.js'

/**
 * Ten `magflock db migrate --db-url` processes (the built CLI) started at once against one
 * database: every migration is applied exactly once and every process exits 0.
 */
let server: TestPostgres
const tmp = tempDir('mf-race-')

beforeAll(async () => {
  server = await startTestPostgres()
})
afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

describe('magflock db migrate, processes racing', () => {
  it('applies every migration exactly once and all exit 0', async () => {
    const bin = cliShim(tmp.dir)
    const db = await freshDb(server, 'race')
    const dir = writeMigrations(path.join(tmp.dir, 'migrations'), generated(40))
    const runs = await Promise.all(
      Array.from({ length: 10 }, () =>
        run(path.join(bin, 'magflock'), ['db', 'migrate', '--db-url', server.url(db), '--dir', dir, '--lock-timeout', '170', '--json'], {
          reject: false,
          timeoutMs: 175_000,
        }),
      ),
    )
    const outs = runs.map((r) => JSON.parse(r.stdout) as { ok: boolean; data: { applied: unknown[] } })
    expect(runs.map((r) => r.exitCode)).toEqual(Array(10).fill(0))
    expect(outs.every((o) => o.ok)).toBe(true)
    expect(outs.reduce((s, o) => s + o.data.applied.length, 0)).toBe(40)
    const rows = await server.query<{ n: number; d: number; max: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, max(id) AS max FROM migrations WHERE id > 0',
      [],
      db,
    )
    expect(rows.rows[0]).toEqual({ n: 40, d: 40, max: 40 })
    const tables = await server.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^t[0-9]+$'", [], db)
    expect(tables.rows[0]?.n).toBe(40)
    const left = await server.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'")
    expect(left.rows[0]?.n).toBe(0)
  }, 180_000)

  it('--create-db: three jobs at once create the missing database once and all exit 0', async () => {
    const bin = cliShim(tmp.dir)
    const dir = writeMigrations(path.join(tmp.dir, 'migrations-create'), generated(3))
    const runs = await Promise.all(
      Array.from({ length: 3 }, () =>
        run(path.join(bin, 'magflock'), ['db', 'migrate', '--db-url', server.url('created_by_ci'), '--create-db', '--dir', dir, '--json'], {
          reject: false,
          timeoutMs: 175_000,
        }),
      ),
    )
    expect(runs.map((r) => r.exitCode), runs.map((r) => r.stdout).join('\n')).toEqual([0, 0, 0])
    const rows = await server.query<{ n: number }>('SELECT count(*)::int AS n FROM migrations WHERE id > 0', [], 'created_by_ci')
    expect(rows.rows[0]?.n).toBe(3)
  }, 180_000)
})
