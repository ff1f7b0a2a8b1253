import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isMagflockError } from '../../../src/errors/index.js'
import { freePort } from '../../../src/platform/ports.js'
import { startKernel, type RunningKernel } from '../../../src/daemon/boot.js'
import { SUPERUSER_SECRET } from '../../../src/secrets/names.js'
import { rotateSecretInKernel } from '../../../src/databases/rotate-secret.js'
import { tempDir } from '../../helpers/tmp.js'
import { KernelClient } from '../../../src/client/index.js'
import { tokenCreate } from '../../../src/api/core.js'
import { configReload } from '../../../src/api/config.js'
import { secretsRotate } from '../../../src/api/secrets.js'
import { canLogin } from '../../../src/databases/rotate-password.js'

/**
 * The real kernel (in-process, real Postgres) with layered config: --env production picks
 * the overlay, reload applies live keys and refuses a bad file, rotating the superuser
 * through the kernel's own services keeps the flock reachable, and the superuser password
 * appears in no log or audit record.
 */
let tmp: ReturnType<typeof tempDir>
let kernel: RunningKernel | undefined
let project: string
let state: string
let port: number

const login = (password: string) => canLogin({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' })

beforeAll(async () => {
  tmp = tempDir('mf-kcfg-')
  project = path.join(tmp.dir, 'project')
  state = path.join(tmp.dir, 'state')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(project)
  port = await freePort()
  writeFileSync(path.join(project, 'magflock.yaml'), `postgres:\n  port: ${await freePort()}\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\n`)
  writeFileSync(path.join(project, 'magflock.production.yaml'), `# production\npostgres:\n  port: ${port}\nkernel:\n  logLevel: info\n`)
  kernel = await startKernel({ stateDir: state, projectDir: project, env: 'production' })
})
afterAll(async () => {
  await kernel?.shutdown({ keepPostgres: false, reason: 'test done' })
  tmp?.cleanup()
})

describe('kernel with layered config and the vault', () => {
  it('started with --env production, it uses the production overlay', () => {
    const k = kernel!.services
    expect(k.env).toBe('production')
    expect(k.config().postgres.port).toBe(port)
    expect(k.instances.primary().port).toBe(port)
  })

  it('reload applies a live setting, reports restart-only ones, and refuses a bad file keeping the running config', async () => {
    const k = kernel!.services
    writeFileSync(path.join(project, 'magflock.production.yaml'), `postgres:\n  port: ${port + 1}\nkernel:\n  logLevel: debug\n`)
    const r = await kernel!.reload()
    expect(r).toEqual({ env: 'production', applied: ['kernel.logLevel'], restartRequired: ['postgres.port'] })
    expect(k.config().kernel.logLevel).toBe('debug')

    writeFileSync(path.join(project, 'magflock.production.yaml'), `postgres:\n  port: ${port}\nkernel:\n  logLevel: shouting\n`)
    const before = k.config()
    try {
      await kernel!.reload()
      expect.fail('reload should refuse an invalid file')
    } catch (err) {
      expect(isMagflockError(err) && err.code).toBe('E_CONFIG_INVALID')
    }
    expect(k.config()).toBe(before)
    expect(k.config().kernel.logLevel).toBe('debug')
    writeFileSync(path.join(project, 'magflock.production.yaml'), `postgres:\n  port: ${port}\n`)
    await kernel!.reload()
  })

  it('config reload over the control API applies a live key and refuses a bad file with E_CONFIG_INVALID', async () => {
    const k = kernel!.services
    const client = new KernelClient(k.layout)
    writeFileSync(path.join(project, 'magflock.production.yaml'), `postgres:\n  port: ${port}\nkernel:\n  logLevel: warn\n`)
    expect(await client.call(configReload, {})).toMatchObject({ env: 'production', applied: ['kernel.logLevel'], restartRequired: [] })
    expect(k.config().kernel.logLevel).toBe('warn')
    writeFileSync(path.join(project, 'magflock.production.yaml'), `postgres:\n  port: nope\n`)
    await expect(client.call(configReload, {})).rejects.toMatchObject({ code: 'E_CONFIG_INVALID' })
    expect(k.config().kernel.logLevel).toBe('warn')
    writeFileSync(path.join(project, 'magflock.production.yaml'), `postgres:\n  port: ${port}\n`)
  })

  it('rotateSecretInKernel rotates a database owner found in pg_database, and plain secrets', async () => {
    const k = kernel!.services
    const admin = new pg.Client(await k.instances.primary().connection('postgres'))
    await admin.connect()
    await admin.query(`CREATE ROLE shop_owner LOGIN PASSWORD 'shop-old-password'`)
    await admin.query('CREATE DATABASE shop OWNER shop_owner')
    await admin.end()
    await k.secrets.set('db.shop.owner.password', 'shop-old-password')
    const r = await rotateSecretInKernel(k, 'db.shop.owner.password')
    expect(r.role).toBe('shop_owner')
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'shop_owner', password: (await k.secrets.get('db.shop.owner.password'))!, database: 'shop' })
    await c.connect()
    await c.end()
    await k.secrets.set('plain-token', 'plain-old-value')
    expect((await rotateSecretInKernel(k, 'plain-token')).role).toBeUndefined()
    expect(await k.secrets.get('plain-token')).not.toBe('plain-old-value')
    await expect(rotateSecretInKernel(k, 'db.nope.owner.password')).rejects.toThrow(/does not exist/)
  })

  it('secrets rotate of the superuser over the control API: old password stops, new works, the flock stays reachable', async () => {
    const k = kernel!.services
    const old = (await k.secrets.get(SUPERUSER_SECRET))!
    expect(old).toBeTruthy()
    // Through the control API, as `magflock secrets rotate` does: the kernel's handler, role check and audit.
    const r = await new KernelClient(k.layout).call(secretsRotate, { name: SUPERUSER_SECRET })
    expect(r).toMatchObject({ name: SUPERUSER_SECRET, role: 'postgres' })
    const next = (await k.secrets.get(SUPERUSER_SECRET))!
    expect(next).not.toBe(old)
    expect(await login(next)).toBe(true)
    expect(await login(old)).toBe(false)
    // The kernel resolves the password at call time, so its own connections keep working.
    const c = new pg.Client(await k.instances.primary().connection('postgres'))
    await c.connect()
    await c.end()
    // The libpq passfile `up`'s connect line uses (0600) follows the rotation.
    const pgpass = readFileSync(k.layout.pgpass, 'utf8')
    expect(pgpass.includes(old)).toBe(false)
    expect(pgpass).toContain(`127.0.0.1:*:*:postgres:${next.replace(/[\\:]/g, (ch) => `\\${ch}`)}`)
    expect(statSync(k.layout.pgpass).mode & 0o777).toBe(0o600)
    // Neither password appears in any log, audit record or state file outside the vault (and
    // that passfile).
    // One audited (mutating) API call, so the audit log exists and is part of the sweep.
    await new KernelClient(k.layout).call(tokenCreate, { role: 'viewer', name: 'sweep' })
    const scanned: string[] = []
    for (const f of readdirSync(state, { recursive: true }) as string[]) {
      const p = path.join(state, f)
      if (!statSync(p).isFile() || p.includes(`${path.sep}data${path.sep}`) || p === k.layout.pgpass) continue
      scanned.push(f)
      const text = readFileSync(p, 'latin1')
      expect(text.includes(old), p).toBe(false)
      expect(text.includes(next), p).toBe(false)
    }
    expect(scanned).toContain('kernel.log')
    expect(scanned.some((f) => f.startsWith('audit'))).toBe(true)
  })
})
