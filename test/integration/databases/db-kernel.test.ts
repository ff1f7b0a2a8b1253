import { readFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { execa } from 'execa'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../../helpers/flock.js'
import { writeMigrations } from '../migrations/fixtures.js'

/**
 * The kernel path: `magflock db …` and `db migrate --db NAME` through a real kernel
 * (built CLI, `magflock up` on a temp project), owner credentials from the vault.
 */
let f: Flock

beforeAll(async () => {
  f = await createFlock()
  const up = await f.run(['up', '--json'])
  if (!up.json?.ok) throw new Error(`magflock up failed: ${up.stdout} ${up.stderr}`)
}, 180_000)
afterAll(async () => {
  await f?.destroy()
})

describe('db commands through the kernel', { timeout: 180_000 }, () => {
  it('db create: exit 0, then exit 4 E_DB_EXISTS, and --if-not-exists exits 0', async () => {
    const first = await f.run<{ created: boolean; owner: string; passwordSecret: string }>(['db', 'create', 'app', '--json'])
    expect(first.exitCode, first.stdout + first.stderr).toBe(0)
    expect(first.json).toMatchObject({ ok: true, data: { created: true, owner: 'app', passwordSecret: 'db.app.owner.password' } })
    const again = await f.run(['db', 'create', 'app', '--json'])
    expect(again.exitCode).toBe(4)
    expect(again.json).toMatchObject({ ok: false, error: { code: 'E_DB_EXISTS' } })
    const ok = await f.run(['db', 'create', 'app', '--if-not-exists', '--json'])
    expect(ok.exitCode).toBe(0)
    expect(ok.json).toMatchObject({ ok: true, data: { created: false } })
    const bad = await f.run(['db', 'create', 'Bad-Name', '--json'])
    expect(bad.exitCode).toBe(2)
    expect(bad.json).toMatchObject({ ok: false, error: { code: 'E_DB_NAME_INVALID' } })
  })

  it('db list and db url (password only with --reveal)', async () => {
    const list = await f.run<{ databases: Array<{ name: string; owner: string; managed: boolean }> }>(['db', 'list', '--json'])
    expect(list.exitCode).toBe(0)
    expect(list.json?.ok && list.json.data.databases.find((d) => d.name === 'app')).toMatchObject({ owner: 'app', managed: true })
    const url = await f.run<{ url: string; password?: string }>(['db', 'url', 'app', '--json'])
    expect(url.json).toMatchObject({ ok: true, data: { url: `postgres://app@127.0.0.1:${f.pgPort}/app`, revealed: false } })
    const shown = await f.run<{ url: string }>(['db', 'url', 'app', '--reveal'])
    expect(shown.exitCode).toBe(0)
    const c = new pg.Client({ connectionString: shown.stdout.trim() })
    await c.connect()
    try {
      expect((await c.query('SELECT current_user AS u')).rows[0]).toEqual({ u: 'app' })
    } finally {
      await c.end()
    }
    // The failover-proof form: a libpq multi-host URL that only accepts a read-write server.
    const routed = await f.run<{ url: string }>(['db', 'url', 'app', '--role', 'primary', '--reveal', '--json'])
    expect(routed.json?.ok && routed.json.data.url).toContain('target_session_attrs=read-write')
    const psql = findPgBinaries().tool('psql')
    const q = await execa(psql, [routed.json?.ok ? routed.json.data.url : '', '-Atc', 'select current_user || pg_is_in_recovery()::text'], { reject: false })
    expect(q.stdout.trim()).toBe('appfalse')
  })

  it('db migrate --db applies as the owner, status shows it, and the audit log records it', async () => {
    writeMigrations(path.join(f.projectDir, 'migrations'), {
      '00001_users.sql': 'CREATE TABLE users (id bigint PRIMARY KEY);\n',
      '00002_seed.sql': 'INSERT INTO users VALUES (1), (2);\n',
    })
    // Without --json and without a TTY: one line per migration on stderr, from the NDJSON
    // progress events the kernel streamed.
    const res = await f.run(['db', 'migrate', '--db', 'app'])
    expect(res.exitCode, res.stdout + res.stderr).toBe(0)
    expect(res.stderr).toMatch(/applied 00001_users\.sql[^\n]*\n[^]*applied 00002_seed\.sql/)
    expect(res.stdout).toContain('Applied 2 migration(s) to app')
    const st = await f.run<{ applied: unknown[]; ok: boolean }>(['db', 'migrate', 'status', '--db', 'app', '--json'])
    expect(st.json).toMatchObject({ ok: true, data: { ok: true, applied: [expect.anything(), expect.anything()] } })
    const c = await f.connect('app')
    try {
      expect((await c.query("SELECT tableowner FROM pg_tables WHERE tablename = 'users'")).rows[0]).toEqual({ tableowner: 'app' })
    } finally {
      await c.end()
    }
    const audit = readFileSync(f.layout.auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    // The outcome record (the intent record before it has only the request).
    const rec = audit.find((r) => r.action === 'db.migrate' && r.result === 'ok')
    expect(JSON.stringify(rec)).toContain('00002_seed.sql')
    expect(JSON.stringify(rec)).toContain('"database":"app"')
    expect(readFileSync(f.layout.auditLog, 'utf8')).not.toMatch(/"password"/)
  })

  it('two db migrate --db calls at once: the second waits for the first, both exit 0', async () => {
    writeMigrations(path.join(f.projectDir, 'migrations'), { '00003_slow.sql': 'SELECT pg_sleep(4);\nCREATE TABLE slow (id int);\n' })
    const both = await Promise.all([
      f.run<{ applied: unknown[] }>(['db', 'migrate', '--db', 'app', '--json']),
      f.run<{ applied: unknown[] }>(['db', 'migrate', '--db', 'app', '--json']),
    ])
    expect(both.map((r) => r.exitCode), both.map((r) => r.stdout).join('\n')).toEqual([0, 0])
    expect(both.reduce((n, r) => n + (r.json?.ok ? r.json.data.applied.length : 0), 0)).toBe(1)
  })

  it('db psql connects with vault credentials', async () => {
    const r = await f.run(['db', 'psql', 'app', '--', '-XAtc', 'SELECT current_user'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe('app')
  })

  it('db psql opens a restored database (owned by postgres) for an admin; other roles get a hint that says so', async () => {
    const backup = await f.run<{ id: string }>(['backup', 'create', '--type', 'logical', '--db', 'app', '--json'])
    expect(backup.exitCode, backup.stdout + backup.stderr).toBe(0)
    const id = (backup.json as { data: { id: string } }).data.id
    const restored = await f.run(['backup', 'restore', id, '--to-db', 'app_copy', '--json'])
    expect(restored.exitCode, restored.stdout + restored.stderr).toBe(0)
    const list = await f.run<{ databases: Array<{ name: string; owner: string; managed: boolean }> }>(['db', 'list', '--json'])
    const copy = (list.json as { data: { databases: Array<{ name: string; owner: string; managed: boolean }> } }).data.databases.find((d) => d.name === 'app_copy')
    expect(copy).toMatchObject({ owner: 'postgres', managed: false })

    const r = await f.run(['db', 'psql', 'app_copy', '--', '-XAtc', 'SELECT current_user || current_database()'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe('postgresapp_copy')

    const op = await f.run<{ token: string }>(['token', 'create', '--role', 'operator', '--name', 'op-psql', '--json'])
    const token = (op.json as { data: { token: string } }).data.token
    const denied = await f.run(['db', 'psql', 'app_copy', '--token', token, '--', '-XAtc', 'SELECT 1'])
    expect(denied.exitCode).toBe(3)
    expect(denied.stderr).toContain('E_DB_NO_CREDENTIALS')
    expect(denied.stderr).toContain('admin token')
    // The copy's tables belong to the role app: drop it so the next test can drop that role.
    expect((await f.run(['db', 'drop', 'app_copy', '--force', '--json'])).exitCode).toBe(0)
  })

  it('db drop needs --force in scripts, then drops database and role', async () => {
    const refused = await f.run(['db', 'drop', 'app', '--json'])
    expect(refused.exitCode).toBe(5)
    expect(refused.json).toMatchObject({ ok: false, error: { code: 'E_DB_CONFIRMATION_REQUIRED' } })
    const dropped = await f.run(['db', 'drop', 'app', '--force', '--json'])
    expect(dropped.exitCode, dropped.stdout).toBe(0)
    expect(dropped.json).toMatchObject({ ok: true, data: { dropped: true, roleDropped: true } })
    const list = await f.run<{ databases: Array<{ name: string }> }>(['db', 'list', '--json'])
    expect(list.json?.ok && list.json.data.databases.some((d) => d.name === 'app')).toBe(false)
  })
})
