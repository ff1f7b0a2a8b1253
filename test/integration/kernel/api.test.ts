import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import http from 'node:http'
import net from 'node:net'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { startKernel, type RunningKernel } from '../../../src/daemon/boot.js'
import { KernelClient } from '../../../src/client/index.js'
import { status, shutdown, tokenCreate, tokenRevoke, auditVerify } from '../../../src/api/core.js'
import { stateLayout } from '../../../src/platform/paths.js'
import { configReload } from '../../../src/api/config.js'
import { isProcessAliveSync } from '../../../src/platform/pids.js'
import pg from 'pg'
import { freePort } from '../../../src/platform/ports.js'
import { isMagflockError } from '../../../src/errors/index.js'
import { tempDir } from '../../helpers/tmp.js'
import { FIRST_INSTANCE } from '../../../src/daemon/instances.js'

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 9).toString('base64')

function raw(socketPath: string, req: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: { error?: { code: string } } }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath, method: req.method ?? 'GET', path: req.path, headers: { host: 'magflock', ...(req.headers ?? {}) } }, (res) => {
      let b = ''
      res.on('data', (c) => (b += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(b || '{}') }))
    })
    r.on('error', reject)
    if (req.body) r.write(req.body)
    r.end()
  })
}

async function project(extra = ''): Promise<{ dir: string; stateDir: string; cleanup(): void; pgPort: number }> {
  const t = tempDir('mf-kapi-')
  const pgPort = await freePort()
  const metricsPort = await freePort()
  writeFileSync(path.join(t.dir, 'magflock.yaml'), `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${metricsPort}\n${extra}`)
  return { dir: t.dir, stateDir: path.join(t.dir, '.magflock'), cleanup: t.cleanup, pgPort }
}

describe('kernel control API (in-process kernel, real Postgres)', () => {
  let k: RunningKernel
  let p: Awaited<ReturnType<typeof project>>
  let admin: KernelClient
  let sock: string

  beforeAll(async () => {
    p = await project()
    k = await startKernel({ stateDir: p.stateDir, projectDir: p.dir })
    const layout = stateLayout(p.stateDir)
    admin = new KernelClient(layout)
    sock = layout.socket
  })
  afterAll(async () => {
    await k?.shutdown({ keepPostgres: false, reason: 'test' })
    p?.cleanup()
  })

  it('serves status to the admin token', async () => {
    const s = await admin.call(status, {})
    expect(s.instances[0]).toMatchObject({ name: FIRST_INSTANCE, role: 'primary', state: 'running', port: p.pgPort })
    expect(s.components.map((c) => c.name)).toEqual(['postgres', 'backup-scheduler', 'extensions', 'failover-monitor', 'metrics', 'pooler', 'realtime', 'wal-archiver', 'wal-shipper'])
    expect(s.primaryUrl).toContain(`127.0.0.1:${p.pgPort}`)
    expect(s.primaryUrl).toContain('target_session_attrs=read-write')
    expect(s.components.every((c) => c.state === 'running' && c.healthy)).toBe(true)
  })

  it('refuses a missing or wrong token with 401 E_UNAUTHENTICATED, and audits it', async () => {
    expect((await raw(sock, { path: '/v1/status' })).body.error?.code).toBe('E_UNAUTHENTICATED')
    const bad = await raw(sock, { path: '/v1/status', headers: { authorization: 'Bearer mf_nope' } })
    expect(bad.status).toBe(401)
    expect(bad.body.error?.code).toBe('E_UNAUTHENTICATED')
    const log = readFileSync(stateLayout(p.stateDir).auditLog, 'utf8')
    expect(log).toContain('"result":"denied"')
    expect(log).not.toContain('mf_nope')
  })

  it('refuses a viewer token on a mutating route with 403 E_FORBIDDEN', async () => {
    const t = await admin.call(tokenCreate, { role: 'viewer', name: 'dash' })
    const viewer = new KernelClient(stateLayout(p.stateDir), { token: t.token })
    await expect(viewer.call(status, {})).resolves.toBeTruthy()
    const err = await viewer.call(shutdown, { keepPostgres: true }).catch((e: unknown) => e)
    expect(isMagflockError(err) && err.code).toBe('E_FORBIDDEN')
    expect(isMagflockError(err) && err.exitCode).toBe(9)
    const log = readFileSync(stateLayout(p.stateDir).auditLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(log.some((r: { action: string; result: string; actor: string }) => r.action === 'shutdown' && r.result === 'denied' && r.actor === 'dash')).toBe(true)
  })

  it('a revoked token stops working at once', async () => {
    const t = await admin.call(tokenCreate, { role: 'operator', name: 'ops' })
    const ops = new KernelClient(stateLayout(p.stateDir), { token: t.token })
    await ops.call(status, {})
    await admin.call(tokenRevoke, { id: t.id })
    const err = await ops.call(status, {}).catch((e: unknown) => e)
    expect(isMagflockError(err) && err.code).toBe('E_UNAUTHENTICATED')
  })

  it('refuses browser-shaped requests (foreign Host or any Origin)', async () => {
    const token = readFileSync(stateLayout(p.stateDir).adminToken, 'utf8').trim()
    const auth = { authorization: `Bearer ${token}` }
    expect((await raw(sock, { path: '/v1/status', headers: { ...auth, host: 'evil.example' } })).body.error?.code).toBe('E_BAD_ORIGIN')
    expect((await raw(sock, { path: '/v1/status', headers: { ...auth, origin: 'http://evil.example' } })).status).toBe(403)
    expect((await raw(sock, { path: '/v1/status', headers: auth })).status).toBe(200)
  })

  it('rejects an invalid body with 400 E_INVALID_REQUEST and an unknown route with 404', async () => {
    const token = readFileSync(stateLayout(p.stateDir).adminToken, 'utf8').trim()
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    const r1 = await raw(sock, { method: 'POST', path: '/v1/tokens', headers: auth, body: '{"role":"king","name":"x"}' })
    expect(r1.status).toBe(400)
    expect(r1.body.error?.code).toBe('E_INVALID_REQUEST')
    const r2 = await raw(sock, { method: 'POST', path: '/v1/tokens', headers: auth, body: '{not json' })
    expect(r2.body.error?.code).toBe('E_INVALID_REQUEST')
    expect((await raw(sock, { path: '/v1/nope', headers: auth })).status).toBe(404)
  })

  it('config reload applies a reloadable postgres setting to the running instance', async () => {
    writeFileSync(
      path.join(p.dir, 'magflock.yaml'),
      readFileSync(path.join(p.dir, 'magflock.yaml'), 'utf8').replace('    fsync: "off"\n', '    fsync: "off"\n    work_mem: "7MB"\n'),
    )
    const r = await admin.call(configReload, {})
    expect(r.applied).toContain('postgres.settings.work_mem')
    const c = new pg.Client(await k.instances.primary().connection())
    await c.connect()
    try {
      expect((await c.query('show work_mem')).rows[0].work_mem).toBe('7MB')
    } finally {
      await c.end()
    }
  })

  it('keeps a verifiable audit chain of what happened', async () => {
    const v = await admin.call(auditVerify, {})
    expect(v.ok).toBe(true)
    expect(v.records).toBeGreaterThanOrEqual(4)
  })

  it('the socket is 0600 and answers only on the state dir path', async () => {
    expect(sock).toBe(path.join(p.stateDir, 'magflock.sock'))
    const st = statSync(sock)
    expect(st.isSocket()).toBe(true)
    expect(st.mode & 0o777).toBe(0o600)
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(sock, () => {
        c.destroy()
        resolve()
      })
      c.on('error', reject)
    })
  })
})

describe('kernel boot failures', () => {
  it('refuses with E_PORT_IN_USE when the Postgres port is taken, and starts nothing', async () => {
    const p = await project()
    const blocker = net.createServer()
    await new Promise<void>((r) => blocker.listen(p.pgPort, '127.0.0.1', () => r()))
    try {
      const err = await startKernel({ stateDir: p.stateDir, projectDir: p.dir }).catch((e: unknown) => e)
      expect(isMagflockError(err) && err.code).toBe('E_PORT_IN_USE')
      const layout = stateLayout(p.stateDir)
      expect(existsSync(layout.dataDir(FIRST_INSTANCE))).toBe(false)
      expect(existsSync(layout.kernelJson)).toBe(false)
      expect(existsSync(layout.socket)).toBe(false)
      expect(existsSync(layout.lockFile)).toBe(false)
    } finally {
      blocker.close()
      p.cleanup()
    }
  })

  it('a boot that fails (metrics port taken) leaves an already-serving Postgres untouched', async () => {
    const p = await project()
    const layout = stateLayout(p.stateDir)
    const first = await startKernel({ stateDir: p.stateDir, projectDir: p.dir })
    const conn = await first.instances.primary().connection()
    await first.shutdown({ keepPostgres: true, reason: 'test' })
    const pm = Number(readFileSync(`${layout.dataDir(FIRST_INSTANCE)}/postmaster.pid`, 'utf8').split('\n')[0])
    const metricsPort = Number(/metrics:\n {2}port: (\d+)/.exec(readFileSync(path.join(p.dir, 'magflock.yaml'), 'utf8'))?.[1])
    const blocker = net.createServer()
    await new Promise<void>((r) => blocker.listen(metricsPort, '127.0.0.1', () => r()))
    try {
      const err = await startKernel({ stateDir: p.stateDir, projectDir: p.dir }).catch((e: unknown) => e)
      expect(isMagflockError(err) && err.code).toBe('E_PORT_IN_USE')
      expect(isMagflockError(err) && err.message).toContain(String(metricsPort))
      expect(isProcessAliveSync(pm)).toBe(true)
      const c = new pg.Client(conn)
      await c.connect()
      expect((await c.query('select 1 as one')).rows[0].one).toBe(1)
      await c.end()
    } finally {
      blocker.close()
      process.kill(pm, 'SIGINT')
      p.cleanup()
    }
  })

  it('never starts an instance the topology records as fenced', async () => {
    const p = await project()
    const layout = stateLayout(p.stateDir)
    mkdirSync(layout.root, { recursive: true })
    // The primary is provisioned first (a topology naming a primary that never had a data dir
    // reads as a lost data dir, which the kernel refuses to re-initialise empty).
    const first = await startKernel({ stateDir: p.stateDir, projectDir: p.dir })
    await first.shutdown({ keepPostgres: false, reason: 'test' })
    // A fenced old primary whose data dir would not even start: booting it would fail the kernel.
    writeFileSync(`${layout.root}/topology.json`, JSON.stringify({ instances: [{ name: FIRST_INSTANCE, role: 'primary', port: p.pgPort }, { name: 'old', role: 'fenced', port: await freePort() }] }))
    const k = await startKernel({ stateDir: p.stateDir, projectDir: p.dir })
    try {
      const s = await new KernelClient(layout).call(status, {})
      expect(s.instances.find((i) => i.name === 'old')).toMatchObject({ role: 'fenced', pid: null })
      expect(s.instances.find((i) => i.name === FIRST_INSTANCE)).toMatchObject({ role: 'primary', state: 'running' })
      expect(s.primaryUrl).not.toContain(',') // the fenced one is not a routing target
    } finally {
      await k.shutdown({ keepPostgres: false, reason: 'test' })
      p.cleanup()
    }
  })

  it('refuses an invalid config with the key path, and starts nothing', async () => {
    const t = tempDir('mf-kbad-')
    writeFileSync(path.join(t.dir, 'magflock.yaml'), 'postgres:\n  port: "abc"\n')
    try {
      const err = await startKernel({ stateDir: path.join(t.dir, '.magflock'), projectDir: t.dir }).catch((e: unknown) => e)
      expect(isMagflockError(err) && err.code).toBe('E_CONFIG_INVALID')
      expect(isMagflockError(err) && err.message).toContain('postgres.port')
      expect(existsSync(path.join(t.dir, '.magflock', 'instances'))).toBe(false)
    } finally {
      t.cleanup()
    }
  })
})
