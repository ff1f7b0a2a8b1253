import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run, spawnLong } from '../../src/platform/process.js'
import { startTestPostgres, type TestPostgres } from '../helpers/pg.js'
import { tempDir } from '../helpers/tmp.js'
import { cliShim, freshDb, writeMigrations } from '../integration/migrations/fixtures.js'

/**
 * kill -9 of `magflock db migrate` in the middle of a migration. Its backend must notice
 * within about a second (client_connection_check_interval), roll the file back and release
 * the migration lock, so the next run applies everything exactly once. Without that, the
 * backend would sleep on for 30 s holding the lock and the next run would time out.
 */
let server: TestPostgres
const tmp = tempDir('mf-chaos-')

beforeAll(async () => {
  server = await startTestPostgres()
})
afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('condition not reached')
}

describe('db migrate killed with SIGKILL mid-migration', () => {
  it('rolls the file back, frees the lock, and the next run applies everything once', async () => {
    const bin = cliShim(tmp.dir)
    const db = await freshDb(server, 'chaos')
    const dir = writeMigrations(path.join(tmp.dir, 'migrations'), {
      '1_slow.sql':
        "CREATE TABLE slow1 (id int);\nSELECT pg_sleep(CASE WHEN to_regclass('public.go_fast') IS NULL THEN 30 ELSE 0 END);\n",
      '2_after.sql': 'CREATE TABLE after2 (id int);\n',
    })
    const args = ['db', 'migrate', '--db-url', server.url(db), '--dir', dir, '--json']
    const victim = spawnLong(path.join(bin, 'magflock'), args, { detached: false, stdio: ['ignore', 'ignore', 'inherit'] })
    let exited = false
    victim.then(() => (exited = true), () => (exited = true))
    await waitFor(async () => {
      if (exited) throw new Error('the migrate process ended before reaching pg_sleep (is dist/ built?)')
      const r = await server.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'magflock-migrate' AND query LIKE '%pg_sleep%'")
      return r.rowCount === 1
    }, 90_000)
    process.kill(victim.pid!, 'SIGKILL')
    await victim.catch(() => {})
    await server.query('CREATE TABLE go_fast ()', [], db)

    const next = await run(path.join(bin, 'magflock'), [...args, '--lock-timeout', '15'], { reject: false, timeoutMs: 60_000 })
    expect(next.exitCode).toBe(0)
    const out = JSON.parse(next.stdout) as { data: { applied: Array<{ file: string }> } }
    expect(out.data.applied.map((m) => m.file)).toEqual(['1_slow.sql', '2_after.sql'])
    const rows = await server.query<{ id: number }>('SELECT id FROM migrations ORDER BY id', [], db)
    expect(rows.rows.map((r) => r.id)).toEqual([0, 1, 2])
  }, 120_000)
})
