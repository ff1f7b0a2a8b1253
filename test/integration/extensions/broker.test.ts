import { execFileSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extGrant, extInstall, extList, extLogs, extRemove, extRevoke } from '../../../src/api/extensions.js'
import { dbCreate } from '../../../src/api/db.js'
import { ROOT } from '../../helpers/cli.js'
import { waitFor } from '../../helpers/wait.js'
import { auditRecords, extInfo, probeExtension, waitForProbe, type ProbeLine } from '../../helpers/extensions.js'
import { errorOf, rawRequest, startSecurityFlock, type SecurityFlock } from '../../security/harness.js'

/**
 * The extension plane's walls, through the real kernel: real OS users, real processes, the
 * real broker on each extension's socket. An extension that tries to read the vault, the
 * master key, the tokens, another extension's state or the kernel's environment is refused by
 * the OS; one that calls a route it was not granted is refused by the broker and audited.
 */
let f: SecurityFlock

beforeAll(async () => {
  f = await startSecurityFlock({ yaml: 'extensions:\n  prober:\n    greeting: hello\n    retries: 3\n' })
  await f.admin.call(dbCreate, { name: 'app' })
  await f.admin.call(dbCreate, { name: 'other' })
  const c = new pg.Client(await f.kernel.services.instances.primary().connection('app'))
  await c.connect()
  await c.query('CREATE TABLE items (id int primary key, v text)')
  await c.query("INSERT INTO items VALUES (1, 'one')")
  await c.end()
}, 180_000)
afterAll(async () => {
  for (const e of (await f?.admin.call(extList, {}).catch(() => ({ extensions: [] })))?.extensions ?? []) await f.admin.call(extRemove, { name: e.name }).catch(() => undefined)
  await f?.stop()
})

describe('ext install', () => {
  it('installs with no grants unless they are named, and refuses capabilities the manifest does not request', async () => {
    const src = probeExtension(f.projectDir, 'plain', ['idle'], { capabilities: ['config:read', 'api:call:status'] })
    const e = await f.admin.call(extInstall, { source: src })
    expect(e.grants).toEqual([])
    expect(e.requested).toEqual(['config:read', 'api:call:status'])
    expect(e.enabled).toBe(false)
    expect((await errorOf(f.admin.call(extGrant, { name: 'plain', capability: 'state:dir' }))).code).toBe('E_EXT_CAPABILITY_NOT_REQUESTED')
    expect((await errorOf(f.admin.call(extGrant, { name: 'plain', capability: 'api:call:secrets.rotate' }))).code).toBe('E_EXT_CAPABILITY_INVALID')
    expect((await errorOf(f.admin.call(extInstall, { source: src }))).code).toBe('E_EXT_EXISTS')
    const g = await f.admin.call(extGrant, { name: 'plain', capability: 'config:read' })
    expect(g.grants).toEqual(['config:read'])
    const records = auditRecords(f.layout.auditLog).filter((r) => r.action === 'ext.grant')
    expect(records.some((r) => r.result === 'ok' && r.details?.capability === 'config:read')).toBe(true)
    expect(records.some((r) => r.result === 'error' && r.details?.code === 'E_EXT_CAPABILITY_NOT_REQUESTED')).toBe(true)
    await f.admin.call(extRemove, { name: 'plain' })
  })

  it('refuses a manifest that is not valid, naming the field', async () => {
    const src = probeExtension(f.projectDir, 'badman', ['idle'], { name: 'Bad Name' })
    const err = await errorOf(f.admin.call(extInstall, { source: src }))
    expect(err.code).toBe('E_EXT_MANIFEST_INVALID')
    expect(err.message).toMatch(/name/)
    expect((await errorOf(f.admin.call(extInstall, { source: '../relative' }))).code).toBe('E_EXT_SOURCE_INVALID')
  })
})

describe('isolation and the broker', () => {
  let lines: ProbeLine[]
  beforeAll(async () => {
    const other = probeExtension(f.projectDir, 'other', ['secret'], { capabilities: ['state:dir'] })
    await f.admin.call(extInstall, { source: other, grants: ['state:dir'], enable: true })
    await waitForProbe(f.admin, 'other', 'wrote-secret')
    const src = probeExtension(f.projectDir, 'prober', ['probe', f.stateDir, 'other'], {
      capabilities: ['state:dir', 'api:call:status', 'config:read', 'db:connect:app:ro', 'db:connect:app:rw'],
      config: { greeting: { type: 'string', required: true }, retries: { type: 'number', default: 5 }, verbose: { type: 'boolean', default: false } },
    })
    await f.admin.call(extInstall, { source: src, grants: ['state:dir'], enable: true })
    lines = await waitForProbe(f.admin, 'prober', 'done')
  }, 120_000)

  it('runs as its own OS user, in its own 0700 state directory, with an allow-listed environment', async () => {
    const start = lines.find((l) => l.probe === 'start')!
    const uid = Number(execFileSync('id', ['-u', 'mfext-prober'], { encoding: 'utf8' }).trim())
    expect(start.uid).toBe(uid)
    expect(uid).not.toBe(0)
    const stateDir = path.join(f.stateDir, 'extensions/prober/state')
    expect(start.cwd).toBe(stateDir)
    const st = statSync(stateDir)
    expect(st.mode & 0o777).toBe(0o700)
    expect(st.uid).toBe(uid)
    const keys = start.envKeys as string[]
    expect(keys).toContain('MAGFLOCK_EXT_TOKEN')
    expect(keys.filter((k) => k.startsWith('MAGFLOCK_')).sort()).toEqual(['MAGFLOCK_EXT_NAME', 'MAGFLOCK_EXT_SOCKET', 'MAGFLOCK_EXT_TOKEN'])
    expect(keys).not.toContain('MAGFLOCK_MASTER_KEY')
    expect(lines.find((l) => l.probe === 'write-state')?.ok).toBe(true)
  })

  it('cannot read the vault, master.key, tokens, audit log, another extension\'s state or the kernel\'s environ', () => {
    for (const what of ['vault', 'master.key', 'tokens', 'admin.token', 'audit', 'other-extension-state', 'kernel-environ']) {
      const l = lines.find((x) => x.probe === 'read' && x.what === what)
      expect(l, what).toBeDefined()
      expect(l!.ok, what).toBe(false)
      expect(['EACCES', 'ENOENT', 'EPERM'], what).toContain(l!.code)
    }
    // The files it was refused exist: the refusal is the wall, not their absence.
    expect(statSync(path.join(f.stateDir, 'tokens.json')).isFile()).toBe(true)
    expect(statSync(path.join(f.stateDir, 'extensions/other/state/secret.txt')).isFile()).toBe(true)
  })

  it('calls an ungranted route → E_EXT_DENIED, a never-grantable one → E_EXT_ROUTE_FORBIDDEN; both audited', () => {
    const call = (p: string) => lines.find((l) => l.probe === 'call' && l.path === p)!
    expect(call('/v1/status')).toMatchObject({ status: 403, code: 'E_EXT_DENIED' })
    expect(call('/v1/ext/self')).toMatchObject({ status: 200 })
    expect(call('/v1/tokens')).toMatchObject({ status: 403, code: 'E_EXT_ROUTE_FORBIDDEN' })
    expect(call('/v1/secrets/rotate')).toMatchObject({ status: 403, code: 'E_EXT_ROUTE_FORBIDDEN' })
    const denied = auditRecords(f.layout.auditLog).filter((r) => r.actor === 'ext:prober' && r.result === 'denied')
    expect(denied.map((r) => [r.action, r.details?.code])).toEqual(
      expect.arrayContaining([
        ['status', 'E_EXT_DENIED'],
        ['token.list', 'E_EXT_ROUTE_FORBIDDEN'],
        ['secrets.rotate', 'E_EXT_ROUTE_FORBIDDEN'],
      ]),
    )
    expect(denied.every((r) => r.role === 'extension')).toBe(true)
  })

  it('its socket takes only its own token: not an admin token, not another extension\'s', async () => {
    const sock = path.join(f.stateDir, 'extensions/prober/api.sock')
    const r = await rawRequest(sock, f.tokens.admin, { path: '/v1/status' })
    expect(r.status).toBe(401)
    // The main socket does not know extension tokens either.
    const environ = execFileSync('cat', [`/proc/${(await extInfo(f.admin, 'prober')).pid}/environ`]).toString('utf8').split('\0')
    const token = environ.find((e) => e.startsWith('MAGFLOCK_EXT_TOKEN='))!.split('=')[1]!
    expect((await rawRequest(f.layout.socket, token, { path: '/v1/status' })).status).toBe(401)
    expect((await rawRequest(path.join(f.stateDir, 'extensions/other/api.sock'), token, { path: '/v1/ext/self' })).status).toBe(401)
    const ok = await rawRequest(sock, token, { path: '/v1/ext/self' })
    expect(ok.status).toBe(200)
    expect(ok.body).toMatchObject({ name: 'prober', grants: ['state:dir'] })
  })

  it('api:call granted → allowed at once; revoked → denied at once', async () => {
    const environ = execFileSync('cat', [`/proc/${(await extInfo(f.admin, 'prober')).pid}/environ`]).toString('utf8').split('\0')
    const token = environ.find((e) => e.startsWith('MAGFLOCK_EXT_TOKEN='))!.split('=')[1]!
    const sock = path.join(f.stateDir, 'extensions/prober/api.sock')
    await f.admin.call(extGrant, { name: 'prober', capability: 'api:call:status' })
    expect((await rawRequest(sock, token, { path: '/v1/status' })).status).toBe(200)
    await f.admin.call(extRevoke, { name: 'prober', capability: 'api:call:status' })
    const r = await rawRequest(sock, token, { path: '/v1/status' })
    expect(r.status).toBe(403)
    expect(r.body.error?.code).toBe('E_EXT_DENIED')
  })
})

describe('capabilities through the broker, each allowed and denied', () => {
  let token: string
  let sock: string
  const call = (p: string, body?: unknown) => rawRequest(sock, token, body === undefined ? { path: p } : { method: 'POST', path: p, body })
  beforeAll(async () => {
    const environ = execFileSync('cat', [`/proc/${(await extInfo(f.admin, 'prober')).pid}/environ`]).toString('utf8').split('\0')
    token = environ.find((e) => e.startsWith('MAGFLOCK_EXT_TOKEN='))!.split('=')[1]!
    sock = path.join(f.stateDir, 'extensions/prober/api.sock')
  })

  it('config:read: its own namespace, checked against its manifest; refused without the grant', async () => {
    const denied = await call('/v1/ext/self/config')
    expect(denied.status).toBe(403)
    expect(denied.body.error?.code).toBe('E_EXT_DENIED')
    await f.admin.call(extGrant, { name: 'prober', capability: 'config:read' })
    const ok = await call('/v1/ext/self/config')
    expect(ok.status, ok.text).toBe(200)
    expect(ok.body).toEqual({ name: 'prober', config: { greeting: 'hello', retries: 3, verbose: false } })
  })

  it('state:dir: the broker names its directory only when granted', async () => {
    const ok = await call('/v1/ext/self/state')
    expect(ok.body).toEqual({ name: 'prober', dir: path.join(f.stateDir, 'extensions/prober/state') })
    await f.admin.call(extRevoke, { name: 'prober', capability: 'state:dir' })
    const denied = await call('/v1/ext/self/state')
    expect(denied.body.error?.code).toBe('E_EXT_DENIED')
    // And the directory is no longer its own.
    expect(statSync(path.join(f.stateDir, 'extensions/prober/state')).uid).toBe(0)
    await f.admin.call(extGrant, { name: 'prober', capability: 'state:dir' })
  })

  it('db:connect ro: a non-superuser role that reads and cannot write; other databases refused', async () => {
    expect((await call('/v1/ext/self/db', { database: 'app', mode: 'ro' })).body.error?.code).toBe('E_EXT_DENIED')
    await f.admin.call(extGrant, { name: 'prober', capability: 'db:connect:app:ro' })
    const r = await call('/v1/ext/self/db', { database: 'app', mode: 'ro' })
    expect(r.status, r.text).toBe(200)
    const url = (r.body as { url: string }).url
    expect((r.body as { role: string }).role).toBe('ext_prober')
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try {
      expect((await c.query('SELECT v FROM items')).rows).toEqual([{ v: 'one' }])
      await expect(c.query("INSERT INTO items VALUES (2, 'two')")).rejects.toThrow(/permission denied/)
      const su = (await c.query<{ rolsuper: boolean; rolcreaterole: boolean }>('SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user')).rows[0]
      expect(su).toEqual({ rolsuper: false, rolcreaterole: false })
    } finally {
      await c.end()
    }
    expect((await call('/v1/ext/self/db', { database: 'other', mode: 'ro' })).body.error?.code).toBe('E_EXT_DENIED')
    await expect(new pg.Client({ connectionString: url.replace(/\/app$/, '/other') }).connect()).rejects.toThrow(/permission denied|not permitted/)
    // The password never reaches the audit log.
    const rec = auditRecords(f.layout.auditLog).filter((x) => x.action === 'ext.self.db' && x.result === 'ok')
    expect(rec.length).toBeGreaterThan(0)
    expect(readFileSync(f.layout.auditLog, 'utf8')).not.toContain(new URL(url).password)
  })

  it('db:connect rw: writes; revoking it takes the SQL rights back', async () => {
    expect((await call('/v1/ext/self/db', { database: 'app', mode: 'rw' })).body.error?.code).toBe('E_EXT_DENIED')
    await f.admin.call(extGrant, { name: 'prober', capability: 'db:connect:app:rw' })
    const url = ((await call('/v1/ext/self/db', { database: 'app', mode: 'rw' })).body as { url: string }).url
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query("INSERT INTO items VALUES (3, 'three')")
    await c.end()
    await f.admin.call(extRevoke, { name: 'prober', capability: 'db:connect:app:rw' })
    await f.admin.call(extRevoke, { name: 'prober', capability: 'db:connect:app:ro' })
    const again = new pg.Client({ connectionString: url })
    await expect(again.connect()).rejects.toThrow(/permission denied/)
  })

  it('over its rate limit: E_EXT_RATE_LIMITED, audited once per second, the kernel keeps answering others', async () => {
    const before = auditRecords(f.layout.auditLog).filter((x) => x.details?.code === 'E_EXT_RATE_LIMITED').length
    const results = await Promise.all(Array.from({ length: 400 }, () => call('/v1/ext/self')))
    const limited = results.filter((r) => r.body.error?.code === 'E_EXT_RATE_LIMITED')
    expect(limited.length).toBeGreaterThan(0)
    expect(limited[0]!.status).toBe(503)
    const after = auditRecords(f.layout.auditLog).filter((x) => x.details?.code === 'E_EXT_RATE_LIMITED').length
    expect(after - before).toBeGreaterThanOrEqual(1)
    expect(after - before).toBeLessThan(limited.length)
    expect((await f.request('admin', { path: '/v1/status' })).status).toBe(200)
  })
})

describe('templates/extension', () => {
  it('installs as is and starts with its requested grants', async () => {
    const e = await f.admin.call(extInstall, { source: path.join(ROOT, 'templates/extension'), grants: ['config:read', 'events:subscribe:backup.*', 'state:dir'], enable: true })
    expect(e.name).toBe('my-extension')
    const started = await waitFor('the template to log "started"', async () => {
      const lines = (await f.admin.call(extLogs, { name: 'my-extension', lines: 100 })).lines
      return lines.find((l) => l.includes('"msg":"started"'))
    }, 60_000, 200)
    expect(JSON.parse(started)).toMatchObject({ name: 'my-extension', greeting: 'hello' })
    await f.admin.call(extRemove, { name: 'my-extension' })
    expect(() => execFileSync('id', ['-u', 'mfext-my-extension'], { stdio: 'ignore' })).toThrow()
  })
})
