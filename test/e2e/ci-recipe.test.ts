import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runMigrations } from '../../src/migrations/runner.js'
import { run } from '../../src/platform/process.js'
import { startTestPostgres, type TestPostgres } from '../helpers/pg.js'
import { tempDir } from '../helpers/tmp.js'
import { cliShim, freshDb, generated, writeMigrations } from '../integration/migrations/fixtures.js'

/**
 * The CI recipe in docs/ci.md, run as written: the shell block between the ci-recipe
 * markers, with `magflock` (the built CLI) on PATH and DATABASE_URL pointing at a real
 * Postgres the kernel does not manage.
 */
const DOC = path.resolve(import.meta.dirname, '../../docs/ci.md')

function recipe(): string {
  const doc = readFileSync(DOC, 'utf8')
  const m = /<!-- ci-recipe:start -->\s*```sh\n([\s\S]*?)```\s*<!-- ci-recipe:end -->/.exec(doc)
  if (!m) throw new Error('docs/ci.md has no ci-recipe block')
  return m[1]!
}

let server: TestPostgres
const tmp = tempDir('mf-ci-')
let bin: string
let n = 0

async function runRecipe(dbUrl: string, files: Record<string, string>, project?: string) {
  const dir = project ?? path.join(tmp.dir, `project${++n}`)
  writeMigrations(path.join(dir, 'migrations'), files)
  writeFileSync(path.join(dir, 'migrate.sh'), recipe(), { mode: 0o755 })
  const res = await run('bash', ['migrate.sh'], {
    cwd: dir,
    env: { PATH: `${bin}:${process.env.PATH}`, DATABASE_URL: dbUrl },
    reject: false,
    timeoutMs: 60_000,
    secrets: [server.password],
  })
  const read = (f: string) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { ok: boolean; data?: Record<string, unknown>; error?: { code: string; details?: Record<string, unknown> } }
  return { ...res, dir, plan: () => read('migrate-plan.json'), result: () => read('migrate-result.json') }
}

beforeAll(async () => {
  server = await startTestPostgres()
  bin = cliShim(tmp.dir)
})
afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

describe('docs/ci.md recipe', () => {
  it('applies the migrations with exit 0', async () => {
    const db = await freshDb(server, 'ci')
    const first = await runRecipe(server.url(db), generated(3))
    expect(first.exitCode).toBe(0)
    const plan = first.plan()
    expect((plan.data?.pending as unknown[]).length).toBe(3)
    const result = first.result()
    expect(result.ok).toBe(true)
    expect((result.data?.applied as Array<{ file: string }>).map((m) => m.file)).toEqual([
      '00001_create-t1.sql',
      '00002_create-t2.sql',
      '00003_create-t3.sql',
    ])
    expect(first.stdout + first.stderr).not.toContain(server.password)
  })

  it('exits 12 with the failing file when a migration fails', async () => {
    const db = await freshDb(server, 'ci')
    const res = await runRecipe(server.url(db), { '1_ok.sql': 'CREATE TABLE ok (id int);\n', '2_bad.sql': 'CREATE TABLE (;\n' })
    expect(res.exitCode).toBe(12)
    const err = res.result().error!
    expect(err.code).toBe('E_MIGRATION_FAILED')
    expect(err.details).toMatchObject({ file: '2_bad.sql', sqlstate: '42601' })
  })

  it('exits 5 at the check step on drift, applying nothing', async () => {
    const db = await freshDb(server, 'ci')
    const project = path.join(tmp.dir, 'drifted')
    await runMigrations({ connection: server.url(db), dir: writeMigrations(path.join(project, 'migrations'), generated(2)) })
    writeMigrations(path.join(project, 'migrations'), { '00001_create-t1.sql': 'CREATE TABLE t1 (id int); -- edited\n', ...generated(1, 3) })
    const res = await runRecipe(server.url(db), {}, project)
    expect(res.exitCode).toBe(5)
    expect(res.plan().error?.code).toBe('E_MIGRATION_DRIFT')
    const t = await server.query<{ r: string | null }>("SELECT to_regclass('t3')::text AS r", [], db)
    expect(t.rows[0]?.r).toBeNull()
  })
})
