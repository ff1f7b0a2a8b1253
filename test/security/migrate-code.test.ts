import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dbCreate } from '../../src/api/db.js'
import { tempDir } from '../helpers/tmp.js'
import { codeOf, startSecurityFlock, type SecurityFlock } from './harness.js'

/**
 * Issue 10, items 1–3: a low-privilege token must not get code execution as root (a .js
 * migration `require()`d by the kernel) or as the `postgres` OS user (a migration applied as
 * the database superuser, `COPY … TO PROGRAM`). Each case is the reproduction,
 * through the real socket with real tokens.
 */
let f: SecurityFlock
let evil: { dir: string; cleanup(): void }
/** Where the planted code would leave its trace: world-writable, so a dropped-privilege child can write too. */
let traces: string

function plantJs(dir: string, file: string, trace: string): void {
  writeFileSync(
    path.join(dir, file),
    `require('node:fs').writeFileSync(${JSON.stringify(trace)}, JSON.stringify({ uid: process.getuid(), env: Object.keys(process.env) }))\n` +
      `module.exports.generateSql = () => 'SELECT 1'\n`,
  )
}

async function superuserQuery(db: string, text: string): Promise<unknown[]> {
  const c = new pg.Client(await f.kernel.services.instances.primary().connection(db))
  await c.connect()
  try {
    return (await c.query(text)).rows
  } finally {
    await c.end()
  }
}

beforeAll(async () => {
  f = await startSecurityFlock()
  evil = tempDir('mf-x-')
  traces = path.join(evil.dir, 'traces')
  mkdirSync(traces)
  chmodSync(traces, 0o1777)
  await f.admin.call(dbCreate, { name: 'app' })
}, 180_000)
afterAll(async () => {
  await f?.stop()
  evil?.cleanup()
})

describe('issue 10 items 1–3: a low-privilege token never runs code', { timeout: 120_000 }, () => {
  it('item 1: viewer GET /v1/db/migrate/status?dir=/tmp/x with a .js file there runs nothing and lists nothing', async () => {
    const x = path.join(evil.dir, 'x1')
    mkdirSync(x)
    const trace = path.join(traces, 'item1')
    plantJs(x, '1_y.js', trace)
    const r = await f.request('viewer', { path: `/v1/db/migrate/status?database=postgres&dir=${encodeURIComponent(x)}` })
    expect(existsSync(trace), 'the kernel ran the planted .js file').toBe(false)
    expect(r.status).toBeGreaterThanOrEqual(400)
    expect(r.text).not.toContain('1_y.js')
    // …and /etc's names are not listed either.
    const etc = await f.request('viewer', { path: '/v1/db/migrate/status?database=app&dir=/etc' })
    expect(codeOf(etc)).toBe('E_MIGRATE_DIR_FORBIDDEN')
    expect(etc.text).not.toMatch(/\.sql|\.js|\/etc/)
    // A GET is not audited, but this refused probe is.
    const audit = readFileSync(f.layout.auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; role?: string; result: string; details?: { dir?: string } })
    expect(audit.some((r) => r.action === 'db.migrate.status' && r.role === 'viewer' && r.result === 'denied' && r.details?.dir === '/etc')).toBe(true)
  })

  it('item 2: ci POST /v1/db/migrate {dir: /tmp/x, dryRun: true} runs nothing', async () => {
    const x = path.join(evil.dir, 'x2')
    mkdirSync(x)
    const trace = path.join(traces, 'item2')
    plantJs(x, '1_y.js', trace)
    for (const [database, code] of [['postgres', 'E_MIGRATE_PLATFORM_DB'], ['app', 'E_MIGRATE_DIR_FORBIDDEN']]) {
      const r = await f.request('ci', { method: 'POST', path: '/v1/db/migrate', body: { database, dir: x, dryRun: true } })
      expect(existsSync(trace), `the kernel ran the planted .js file (database ${database})`).toBe(false)
      expect(codeOf(r)).toBe(code)
    }
  })

  it('status and --dry-run never execute a .js migration, and ci/operator may not apply one', async () => {
    const trace = path.join(traces, 'configured')
    plantJs(path.join(f.projectDir, 'migrations'), '1_seed.js', trace)
    try {
      const st = await f.request('viewer', { path: '/v1/db/migrate/status?database=app' })
      expect(st.status, st.text).toBe(200)
      expect(st.text).toContain('1_seed.js')
      const dry = await f.request('ci', { method: 'POST', path: '/v1/db/migrate', body: { database: 'app', dryRun: true } })
      expect(dry.body.type, dry.text).toBe('result')
      expect((dry.body.data as { pending: Array<{ file: string }> }).pending.map((m) => m.file)).toEqual(['1_seed.js'])
      expect(existsSync(trace), 'status or dry-run executed the .js file').toBe(false)
      for (const role of ['ci', 'operator'] as const) {
        const run = await f.request(role, { method: 'POST', path: '/v1/db/migrate', body: { database: 'app' } })
        expect(codeOf(run), run.text).toBe('E_MIGRATION_JS_FORBIDDEN')
        expect(existsSync(trace)).toBe(false)
      }
      expect(await superuserQuery('app', "SELECT 1 FROM pg_class WHERE relname = 'migrations'")).toEqual([])
    } finally {
      const { rmSync } = await import('node:fs')
      rmSync(path.join(f.projectDir, 'migrations', '1_seed.js'))
    }
  })

  it('an admin .js migration runs in a child as an unprivileged user with an allow-listed environment', async () => {
    const x = path.join(evil.dir, 'x-admin')
    mkdirSync(x)
    chmodSync(x, 0o755)
    const trace = path.join(traces, 'admin')
    plantJs(x, '1_seed.js', trace)
    chmodSync(path.join(x, '1_seed.js'), 0o644)
    await f.admin.call(dbCreate, { name: 'adminjs' })
    const r = await f.request('admin', { method: 'POST', path: '/v1/db/migrate', body: { database: 'adminjs', dir: x } })
    expect(r.body.type, r.text).toBe('result')
    const seen = JSON.parse(readFileSync(trace, 'utf8')) as { uid: number; env: string[] }
    expect(seen.uid).not.toBe(0)
    expect(seen.uid).not.toBe(process.getuid?.())
    expect(seen.env.filter((k) => /MAGFLOCK|PASSWORD|TOKEN|KEY/i.test(k))).toEqual([])
  })

  it('item 3: ci COPY … TO PROGRAM through a migration fails: the connection is never a superuser', async () => {
    const trace = path.join(traces, 'item3')
    const x = path.join(evil.dir, 'x3')
    mkdirSync(x)
    chmodSync(x, 0o755)
    writeFileSync(path.join(x, '1_p.sql'), `COPY (SELECT 1) TO PROGRAM 'id > ${trace}';\n`)
    // A database MagFlock did not make (no owner password in the vault), and `postgres`.
    await superuserQuery('postgres', 'CREATE DATABASE legacy')
    // The call, with the folder in the request…
    for (const database of ['postgres', 'legacy']) {
      const r = await f.request('ci', { method: 'POST', path: '/v1/db/migrate', body: { database, dir: x } })
      expect(existsSync(trace), `COPY TO PROGRAM ran (database ${database})`).toBe(false)
      expect(r.body.type).toBe('error')
    }
    // …and with the folder an admin registered for it: still no superuser for ci or operator.
    const reg = await f.request('admin', { method: 'POST', path: '/v1/db/migrate', body: { database: 'legacy', dir: x, dryRun: true, register: true } })
    expect(reg.body.type, reg.text).toBe('result')
    for (const role of ['ci', 'operator'] as const) {
      const r = await f.request(role, { method: 'POST', path: '/v1/db/migrate', body: { database: 'legacy' } })
      expect(codeOf(r), r.text).toBe('E_MIGRATE_OWNER_UNKNOWN')
      expect(r.body.error?.hint).toContain('magflock db create')
      const st = await f.request(role, { path: '/v1/db/migrate/status?database=legacy' })
      expect(codeOf(st), st.text).toBe('E_MIGRATE_OWNER_UNKNOWN')
      const p = await f.request(role, { method: 'POST', path: '/v1/db/migrate', body: { database: 'postgres' } })
      expect(codeOf(p), p.text).toBe('E_MIGRATE_PLATFORM_DB')
      expect(existsSync(trace)).toBe(false)
    }
    // A MagFlock database (owner password in the vault): the run connects as the owner, and
    // Postgres itself refuses COPY … TO PROGRAM to it.
    await f.admin.call(dbCreate, { name: 'owned' })
    await f.request('admin', { method: 'POST', path: '/v1/db/migrate', body: { database: 'owned', dir: x, dryRun: true, register: true } })
    const owned = await f.request('ci', { method: 'POST', path: '/v1/db/migrate', body: { database: 'owned' } })
    expect(codeOf(owned), owned.text).toBe('E_MIGRATION_FAILED')
    expect(owned.body.error?.message).toMatch(/pg_execute_server_program|superuser/)
    expect(existsSync(trace)).toBe(false)
    // A MagFlock database whose owner was made a superuser is refused as well.
    await f.admin.call(dbCreate, { name: 'elevated' })
    await superuserQuery('postgres', 'ALTER ROLE elevated SUPERUSER')
    await f.request('admin', { method: 'POST', path: '/v1/db/migrate', body: { database: 'elevated', dir: x, dryRun: true, register: true } })
    const el = await f.request('ci', { method: 'POST', path: '/v1/db/migrate', body: { database: 'elevated' } })
    expect(codeOf(el), el.text).toBe('E_MIGRATE_PRIVILEGED_ROLE')
    expect(existsSync(trace)).toBe(false)
    expect(await superuserQuery('legacy', "SELECT 1 FROM pg_class WHERE relname = 'migrations'")).toEqual([])
  })
})
