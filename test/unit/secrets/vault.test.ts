import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { stateLayout, type StateLayout } from '../../../src/platform/paths.js'
import { FileVault, parseMasterKey } from '../../../src/secrets/vault.js'
import { withFileLock } from '../../../src/secrets/lock.js'
import { tempDir } from '../../helpers/tmp.js'
import { errorCode } from '../../helpers/errors.js'

let layout: StateLayout
let cleanup: () => void
beforeEach(() => {
  const t = tempDir('mf-vault-')
  layout = stateLayout(`${t.dir}/state`)
  cleanup = t.cleanup
})
afterEach(() => cleanup())


const hexKey = () => randomBytes(32).toString('hex')

describe('FileVault', () => {
  it('round-trips set/get/list/delete and never stores a value in clear', async () => {
    const v = new FileVault(layout, {})
    await v.set('app.password', 'marker-VALUE-123')
    await v.set('b', 'second-value')
    expect(await v.get('app.password')).toBe('marker-VALUE-123')
    expect(await v.list()).toEqual(['app.password', 'b'])
    expect(await new FileVault(layout, {}).get('b')).toBe('second-value')
    const raw = readFileSync(layout.secretsVault, 'utf8')
    expect(raw).not.toContain('marker-VALUE-123')
    expect(raw).not.toContain('app.password') // names are encrypted too
    expect(await v.delete('b')).toBe(true)
    expect(await v.delete('b')).toBe(false)
    expect(await v.get('b')).toBeUndefined()
  })

  it('creates a 0600 master.key on first use and a 0600 vault', async () => {
    await new FileVault(layout, {}).set('x', 'value-x')
    expect(statSync(layout.masterKey).mode & 0o777).toBe(0o600)
    expect(statSync(layout.secretsVault).mode & 0o777).toBe(0o600)
    expect(parseMasterKey(readFileSync(layout.masterKey, 'utf8'), 'f')).toHaveLength(32)
  })

  it('uses a fresh nonce for every write', async () => {
    const v = new FileVault(layout, {})
    const nonces = new Set<string>()
    for (let i = 0; i < 5; i++) {
      await v.set('same', 'same-value')
      nonces.add((JSON.parse(readFileSync(layout.secretsVault, 'utf8')) as { nonce: string }).nonce)
    }
    expect(nonces.size).toBe(5)
  })

  it('takes the key from MAGFLOCK_MASTER_KEY (hex or base64) and then needs no key file', async () => {
    const key = randomBytes(32)
    await new FileVault(layout, { MAGFLOCK_MASTER_KEY: key.toString('hex') }).set('k', 'value-k')
    expect(existsSync(layout.masterKey)).toBe(false)
    expect(await new FileVault(layout, { MAGFLOCK_MASTER_KEY: key.toString('base64') }).get('k')).toBe('value-k')
  })

  it('refuses a malformed MAGFLOCK_MASTER_KEY with E_VAULT_BAD_KEY', async () => {
    expect(await errorCode(new FileVault(layout, { MAGFLOCK_MASTER_KEY: 'short' }).set('a', 'value-a'))).toBe('E_VAULT_BAD_KEY')
    expect(await errorCode(new FileVault(layout, { MAGFLOCK_MASTER_KEY: 'not base64 !!' }).set('a', 'value-a'))).toBe('E_VAULT_BAD_KEY')
  })

  it('refuses a group/world-readable key file', async () => {
    await new FileVault(layout, {}).set('a', 'value-a')
    chmodSync(layout.masterKey, 0o644)
    expect(await errorCode(new FileVault(layout, {}).get('a'))).toBe('E_VAULT_BAD_KEY')
  })

  it('reports a wrong key as E_VAULT_WRONG_KEY and leaves the vault byte-for-byte untouched', async () => {
    await new FileVault(layout, { MAGFLOCK_MASTER_KEY: hexKey() }).set('a', 'value-a')
    const before = readFileSync(layout.secretsVault)
    const wrong = new FileVault(layout, { MAGFLOCK_MASTER_KEY: hexKey() })
    expect(await errorCode(wrong.get('a'))).toBe('E_VAULT_WRONG_KEY')
    expect(await errorCode(wrong.set('b', 'value-b'))).toBe('E_VAULT_WRONG_KEY')
    expect(await errorCode(wrong.delete('a'))).toBe('E_VAULT_WRONG_KEY')
    expect(readFileSync(layout.secretsVault).equals(before)).toBe(true)
  })

  it('reports a tampered ciphertext, tag, header or a garbage file as E_VAULT_TAMPERED', async () => {
    const env = { MAGFLOCK_MASTER_KEY: hexKey() }
    await new FileVault(layout, env).set('a', 'value-a')
    const good = readFileSync(layout.secretsVault, 'utf8')
    const f = JSON.parse(good) as Record<string, unknown>
    const flip = (b64: string) => {
      const b = Buffer.from(b64, 'base64')
      b[0] = b[0]! ^ 1
      return b.toString('base64')
    }
    const cases: string[] = [
      JSON.stringify({ ...f, data: flip(f.data as string) }),
      JSON.stringify({ ...f, tag: flip(f.tag as string) }),
      JSON.stringify({ ...f, nonce: flip(f.nonce as string) }),
      JSON.stringify({ ...f, version: 9 }),
      JSON.stringify({ ...f, data: undefined }),
      good.slice(0, good.length / 2),
      'garbage',
    ]
    for (const text of cases) {
      writeFileSync(layout.secretsVault, text)
      expect(await errorCode(new FileVault(layout, env).get('a'))).toBe('E_VAULT_TAMPERED')
    }
  })

  it('refuses to invent a key when a vault exists but its key file is gone', async () => {
    await new FileVault(layout, {}).set('a', 'value-a')
    const { rmSync } = await import('node:fs')
    rmSync(layout.masterKey)
    expect(await errorCode(new FileVault(layout, {}).get('a'))).toBe('E_VAULT_KEY_MISSING')
    expect(existsSync(layout.masterKey)).toBe(false)
  })

  it('loses no write when several writers update the vault at once', async () => {
    const env = { MAGFLOCK_MASTER_KEY: hexKey() }
    await Promise.all(Array.from({ length: 12 }, (_, i) => new FileVault(layout, env).set(`s${i}`, `value-${i}`)))
    expect((await new FileVault(layout, env).list()).length).toBe(12)
  })

  it('rejects invalid names', async () => {
    expect(await errorCode(new FileVault(layout, {}).set('bad name', 'v-v-v-v'))).toBe('E_SECRET_BAD_NAME')
  })
})

describe('withFileLock', () => {
  it('breaks a lock left by a dead process', async () => {
    const lock = `${layout.root}.lock`
    writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import('node:os')).hostname(), at: 'x' }))
    expect(await withFileLock(lock, async () => 'ran', { timeoutMs: 2000 })).toBe('ran')
    expect(existsSync(lock)).toBe(false)
  })

  it('gives up with E_VAULT_BUSY while a live process holds it', async () => {
    const lock = `${layout.root}.lock`
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), at: 'x' }))
    expect(await errorCode(withFileLock(lock, async () => 'ran', { timeoutMs: 150 }))).toBe('E_VAULT_BUSY')
    expect(existsSync(lock)).toBe(true)
  })

  it('serializes critical sections', async () => {
    const lock = `${layout.root}.lock`
    let inside = 0
    let maxInside = 0
    await Promise.all(
      Array.from({ length: 6 }, () =>
        withFileLock(lock, async () => {
          inside++
          maxInside = Math.max(maxInside, inside)
          await new Promise((r) => setImmediate(r))
          inside--
        }),
      ),
    )
    expect(maxInside).toBe(1)
  })
})
