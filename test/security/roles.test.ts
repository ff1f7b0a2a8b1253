import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dbCreate } from '../../src/api/db.js'
import { ROLES, type Role, type RouteDef } from '../../src/api/route.js'
import { allRoutes } from '../../src/daemon/routes/index.js'
import { ROOT } from '../helpers/cli.js'
import { codeOf, startSecurityFlock, type RawRequest, type SecurityFlock } from './harness.js'

/**
 * The role → capability table of docs/operations.md, checked against the route definitions
 * in src/api and exercised cell by cell through the real socket with a real token of each
 * role. The matrix is generated from `allRoutes`, so a new route is tested (and must be in
 * the table) without anyone adding a case here.
 *
 * An allowed call is sent with a body the route's schema refuses, so it proves the role gate
 * let it through (400 E_INVALID_REQUEST comes after the role check) without doing anything;
 * routes without inputs (reads, config reload) really run. A denied call gets 403
 * E_FORBIDDEN and an audit record.
 */
interface TableRow {
  id: string
  method: string
  path: string
  roles: Role[]
  mutating: boolean
}

function parseRoleTable(markdown: string): TableRow[] {
  const start = markdown.indexOf('<!-- role-table:start -->')
  const end = markdown.indexOf('<!-- role-table:end -->')
  if (start < 0 || end < start) throw new Error('docs/operations.md has no role table (role-table:start/end markers)')
  const lines = markdown.slice(start, end).split('\n').filter((l) => l.startsWith('| `'))
  return lines.map((l) => {
    const cells = l.split('|').slice(1, -1).map((c) => c.trim())
    const [method, p] = cells[1]!.split(' ')
    return {
      id: cells[0]!.replace(/`/g, ''),
      method: method!,
      path: p!,
      roles: ROLES.filter((_, i) => cells[2 + i] === '✓'),
      mutating: cells[6]!.startsWith('yes'),
    }
  })
}

const table = parseRoleTable(readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8'))
const routes = allRoutes.map((r) => r.def)

function shape(def: RouteDef): string[] {
  return Object.keys((def.input as unknown as { shape?: Record<string, unknown> }).shape ?? {})
}

/** A request the route's input schema refuses ('' for query strings, [] for JSON fields), or its empty input. */
function probe(def: RouteDef): RawRequest {
  const keys = shape(def)
  if (def.method === 'GET') return { method: 'GET', path: keys.length ? `${def.path}?${keys.map((k) => `${k}=`).join('&')}` : def.path }
  return { method: def.method, path: def.path, body: Object.fromEntries(keys.map((k) => [k, []])) }
}

let f: SecurityFlock
const denied: Array<{ id: string; role: Role }> = []

beforeAll(async () => {
  f = await startSecurityFlock()
  await f.admin.call(dbCreate, { name: 'app' })
}, 180_000)
afterAll(async () => {
  await f?.stop()
})

describe('the role table in docs/operations.md is the routes of src/api', () => {
  it('one row per route, same method, path, roles and mutating flag', () => {
    expect(table.map((r) => r.id).sort()).toEqual(routes.map((r) => r.id).sort())
    for (const def of routes) {
      const row = table.find((r) => r.id === def.id)!
      expect({ method: row.method, path: row.path, roles: row.roles, mutating: row.mutating }, def.id).toEqual({
        method: def.method,
        path: def.path,
        roles: ROLES.filter((r) => def.roles.includes(r)),
        mutating: def.mutating,
      })
    }
  })
})

describe('every route × every role through the socket', { timeout: 60_000 }, () => {
  for (const def of routes) {
    for (const role of ROLES) {
      const allowed = def.roles.includes(role)
      it(`${def.id}: ${role} is ${allowed ? 'allowed' : 'denied'}`, async () => {
        const r = await f.request(role, probe(def))
        if (!allowed) {
          expect(r.status, r.text).toBe(403)
          expect(codeOf(r)).toBe('E_FORBIDDEN')
          // The hint names a role that may call it (or says that none may: an extension's route).
          const hint = (JSON.parse(r.text) as { error?: { hint?: string } }).error?.hint ?? ''
          if (def.roles.length === 0) expect(hint).toContain('only an extension')
          else expect(def.roles.some((ok) => hint.includes(`--role ${ok} `)), hint).toBe(true)
          denied.push({ id: def.id, role })
          return
        }
        if (shape(def).length > 0) {
          expect(codeOf(r), r.text).toBe('E_INVALID_REQUEST')
          expect(r.status).toBe(400)
        } else {
          expect(r.status, r.text).toBe(200)
        }
      })
    }
    it(`${def.id}: no token is 401`, async () => {
      const r = await f.request(null, probe(def))
      expect(r.status).toBe(401)
      expect(codeOf(r)).toBe('E_UNAUTHENTICATED')
    })
  }

  it('every denial is in the audit log with the role and route', () => {
    expect(denied.length).toBe(routes.reduce((n, d) => n + ROLES.filter((r) => !d.roles.includes(r)).length, 0))
    const records = readFileSync(f.layout.auditLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { action: string; role?: string; result: string })
    for (const d of denied) {
      expect(records.some((r) => r.action === d.id && r.role === d.role && r.result === 'denied'), `${d.id} ${d.role}`).toBe(true)
    }
  })
})

describe('browser-shaped requests are refused and audited (item 17)', () => {
  const cases: Array<[string, string]> = [
    ['origin', 'http://evil.example'],
    ['host', 'evil.example'],
    ['sec-fetch-site', 'cross-site'],
    ['sec-fetch-mode', 'no-cors'],
    ['sec-fetch-dest', 'document'],
    ['sec-fetch-user', '?1'],
  ]
  for (const [header, value] of cases) {
    it(`${header}: ${value}`, async () => {
      // An admin token does not help a browser.
      for (const req of [{ path: '/v1/status' }, { method: 'POST', path: '/v1/db/migrate', body: { database: 'app', dryRun: true } }]) {
        const r = await f.request('admin', { ...req, headers: { [header]: value } })
        expect(r.status, r.text).toBe(403)
        expect(codeOf(r)).toBe('E_BAD_ORIGIN')
      }
      const records = readFileSync(f.layout.auditLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { action: string; result: string; details?: { header?: string; code?: string } })
      const mine = records.filter((r) => r.result === 'denied' && r.details?.code === 'E_BAD_ORIGIN' && r.details.header === header)
      expect(mine.map((r) => r.action).sort()).toEqual(['db.migrate', 'status'])
    })
  }
})

describe('capabilities inside a route (the last column of the table)', () => {
  const nonAdmin: Role[] = ['operator', 'viewer', 'ci']

  it('db.url: only viewer may not reveal the password', async () => {
    for (const role of ROLES) {
      const r = await f.request(role, { method: 'POST', path: '/v1/db/url', body: { name: 'app', reveal: true } })
      if (role === 'viewer') expect(codeOf(r), r.text).toBe('E_DB_REVEAL_DENIED')
      else expect(r.status, r.text).toBe(200)
    }
  })

  it('db.migrate and db.migrate.status: only admin names a folder', async () => {
    for (const role of ROLES) {
      const st = await f.request(role, { path: `/v1/db/migrate/status?database=app&dir=${encodeURIComponent('/nonexistent/mf')}` })
      const run = await f.request(role, { method: 'POST', path: '/v1/db/migrate', body: { database: 'app', dir: '/nonexistent/mf', dryRun: true } })
      if (role === 'admin') {
        expect(codeOf(st), st.text).toBe('E_MIGRATIONS_DIR_MISSING')
        expect(codeOf(run), run.text).toBe('E_MIGRATIONS_DIR_MISSING')
        continue
      }
      expect(codeOf(st), st.text).toBe('E_MIGRATE_DIR_FORBIDDEN')
      if (role === 'viewer') expect(codeOf(run)).toBe('E_FORBIDDEN')
      else expect(codeOf(run), run.text).toBe('E_MIGRATE_DIR_FORBIDDEN')
      const reg = await f.request(role, { method: 'POST', path: '/v1/db/migrate', body: { database: 'app', dir: '/tmp', dryRun: true, register: true } })
      expect(['E_MIGRATE_DIR_FORBIDDEN', 'E_FORBIDDEN']).toContain(codeOf(reg))
    }
  })

  it('the platform databases are admin-only for migrations', async () => {
    for (const database of ['postgres', 'template1']) {
      for (const role of nonAdmin) {
        const st = await f.request(role, { path: `/v1/db/migrate/status?database=${database}` })
        expect([codeOf(st), database]).toEqual([database === 'template1' ? 'E_DB_NAME_INVALID' : 'E_MIGRATE_PLATFORM_DB', database])
      }
    }
    const admin = await f.request('admin', { path: '/v1/db/migrate/status?database=postgres' })
    expect(admin.status, admin.text).toBe(200)
  })

  it('backup ids are never paths', async () => {
    for (const id of ['..', '.', '../x', '/etc', '.hidden']) {
      const r = await f.request('ci', { method: 'POST', path: '/v1/backups/verify', body: { id } })
      expect(codeOf(r), id).toBe('E_INVALID_REQUEST')
    }
  })
})
