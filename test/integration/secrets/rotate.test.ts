import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isMagflockError } from '../../../src/errors/index.js'
import { stateLayout } from '../../../src/platform/paths.js'
import { SUPERUSER_SECRET, pendingName, roleSecretName } from '../../../src/secrets/names.js'
import { canLogin, finishPendingRotation, rotateRolePassword } from '../../../src/databases/rotate-password.js'
import { FileVault } from '../../../src/secrets/vault.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'

let pgi: TestPostgres
let vault: FileVault
let cleanup: () => void

const login = (user: string, password: string) => canLogin({ host: '127.0.0.1', port: pgi.port, user, password, database: 'postgres' })

async function errCode(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (isMagflockError(err)) return err.code
    throw err
  }
  return 'no error'
}

beforeAll(async () => {
  pgi = await startTestPostgres({ conf: { log_statement: "'all'" } })
  const t = tempDir('mf-rot-')
  cleanup = t.cleanup
  vault = new FileVault(stateLayout(path.join(t.dir, 'state')), {})
})
afterAll(async () => {
  await pgi?.stop()
  cleanup?.()
})

async function makeRole(role: string, password: string) {
  await pgi.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`)
  await vault.set(roleSecretName(role), password)
}

describe('rotateRolePassword against real Postgres', () => {
  it('changes the role password and the vault together: old stops working, new works', async () => {
    await makeRole('app1', 'app1-old-password')
    const r = await rotateRolePassword({ connection: pgi.connection(), role: 'app1', secretName: roleSecretName('app1'), store: vault })
    expect(r.role).toBe('app1')
    const now = await vault.get(roleSecretName('app1'))
    expect(now).not.toBe('app1-old-password')
    expect(await login('app1', now!)).toBe(true)
    expect(await login('app1', 'app1-old-password')).toBe(false)
    expect(await vault.get(pendingName(roleSecretName('app1')))).toBeUndefined()
  })

  it('never sends the plain password to the server (only a SCRAM verifier)', async () => {
    await makeRole('app5', 'app5-old-password')
    await rotateRolePassword({ connection: pgi.connection(), role: 'app5', secretName: roleSecretName('app5'), store: vault, generate: () => 'app5-new-plain-marker' })
    expect(await login('app5', 'app5-new-plain-marker')).toBe(true)
    const { readFileSync } = await import('node:fs')
    const log = readFileSync(path.join(pgi.dir, 'pg.log'), 'utf8')
    expect(log).toContain('ALTER ROLE "app5" PASSWORD')
    expect(log).not.toContain('app5-new-plain-marker')
  })

  it('a failure injected after ALTER ROLE leaves the old password working and in the vault', async () => {
    await makeRole('app2', 'app2-old-password')
    const code = await errCode(
      rotateRolePassword({
        connection: pgi.connection(),
        role: 'app2',
        secretName: roleSecretName('app2'),
        store: vault,
        generate: () => 'app2-new-password',
        faultAfterAlter: () => {
          throw new Error('injected crash between ALTER and vault')
        },
      }),
    )
    expect(code).toBe('E_ROTATE_FAILED')
    expect(await vault.get(roleSecretName('app2'))).toBe('app2-old-password')
    expect(await login('app2', 'app2-old-password')).toBe(true)
    expect(await login('app2', 'app2-new-password')).toBe(false)
    expect(await vault.get(pendingName(roleSecretName('app2')))).toBeUndefined()
  })

  it('a failing vault write after ALTER ROLE is rolled back too', async () => {
    await makeRole('app6', 'app6-old-password')
    const code = await errCode(
      rotateRolePassword({
        connection: pgi.connection(),
        role: 'app6',
        secretName: roleSecretName('app6'),
        store: vault,
        promote: async () => {
          throw new Error('disk full')
        },
      }),
    )
    expect(code).toBe('E_ROTATE_FAILED')
    expect(await login('app6', 'app6-old-password')).toBe(true)
  })

  it('a failing ALTER ROLE (no such role) changes nothing', async () => {
    await vault.set(roleSecretName('ghost'), 'ghost-old-password')
    expect(await errCode(rotateRolePassword({ connection: pgi.connection(), role: 'ghost', secretName: roleSecretName('ghost'), store: vault }))).toBe('E_ROTATE_FAILED')
    expect(await vault.get(roleSecretName('ghost'))).toBe('ghost-old-password')
    expect(await vault.get(pendingName(roleSecretName('ghost')))).toBeUndefined()
  })

  it('refuses when the vault has no current password for the secret', async () => {
    expect(await errCode(rotateRolePassword({ connection: pgi.connection(), role: 'app1', secretName: 'postgres.roles.nobody.password', store: vault }))).toBe('E_SECRET_NOT_FOUND')
  })

  it('finishes a rotation that died after ALTER ROLE (pending promoted) or before it (pending dropped)', async () => {
    await makeRole('app3', 'app3-old-password')
    const name = roleSecretName('app3')
    // Simulate death after ALTER: the database has the pending password, the vault the old one.
    await vault.set(pendingName(name), 'app3-pending-password')
    await pgi.query(`ALTER ROLE app3 PASSWORD 'app3-pending-password'`)
    expect(await finishPendingRotation({ connection: pgi.connection(), role: 'app3', secretName: name, store: vault })).toBe('promoted')
    expect(await vault.get(name)).toBe('app3-pending-password')
    // Death before ALTER: the pending value never reached the database.
    await vault.set(pendingName(name), 'never-applied-password')
    expect(await finishPendingRotation({ connection: pgi.connection(), role: 'app3', secretName: name, store: vault })).toBe('dropped')
    expect(await vault.get(name)).toBe('app3-pending-password')
    expect(await login('app3', 'app3-pending-password')).toBe(true)
  })

  it('rotates the superuser itself over a connection using the old password, rollback included', async () => {
    await vault.set(SUPERUSER_SECRET, pgi.password)
    const failed = await errCode(
      rotateRolePassword({
        connection: pgi.connection(),
        role: 'postgres',
        secretName: SUPERUSER_SECRET,
        store: vault,
        faultAfterAlter: () => {
          throw new Error('injected')
        },
      }),
    )
    expect(failed).toBe('E_ROTATE_FAILED')
    expect(await login('postgres', pgi.password)).toBe(true)

    await rotateRolePassword({ connection: pgi.connection(), role: 'postgres', secretName: SUPERUSER_SECRET, store: vault })
    const next = (await vault.get(SUPERUSER_SECRET))!
    expect(await login('postgres', next)).toBe(true)
    expect(await login('postgres', pgi.password)).toBe(false)
    // Put the original back so the helper can stop the instance cleanly.
    await rotateRolePassword({ connection: { ...pgi.connection(), password: next }, role: 'postgres', secretName: SUPERUSER_SECRET, store: vault, generate: () => pgi.password })
    expect(await login('postgres', pgi.password)).toBe(true)
  })
})
