import { existsSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isMagflockError } from '../../../src/errors/index.js'
import { stateLayout, type StateLayout } from '../../../src/platform/paths.js'
import { generateSecret } from '../../../src/secrets/generate.js'
import { KeychainStore, type KeyringEntry } from '../../../src/secrets/keychain.js'
import { migrateLegacySuperuserPassword } from '../../../src/secrets/migrate.js'
import { SUPERUSER_SECRET, pendingName, roleForSecret } from '../../../src/secrets/names.js'
import { Redactor, pinoRedactHooks, redactor } from '../../../src/secrets/redact.js'
import { resolveSecretRefs, secretRefs } from '../../../src/secrets/resolve.js'
import { decideStore, openSecretStore } from '../../../src/secrets/store.js'
import { FileVault } from '../../../src/secrets/vault.js'
import { defaultConfig } from '../../../src/config/schema.js'
import { tempDir } from '../../helpers/tmp.js'

let layout: StateLayout
let cleanup: () => void
beforeEach(() => {
  const t = tempDir('mf-store-')
  layout = stateLayout(path.join(t.dir, 'state'))
  cleanup = t.cleanup
})
afterEach(() => cleanup())

/** An in-memory stand-in for @napi-rs/keyring's Entry (the real keychain cannot run here). */
function fakeKeyring(opts: { broken?: string } = {}) {
  const data = new Map<string, string>()
  class Entry implements KeyringEntry {
    constructor(
      private service: string,
      private account: string,
    ) {}
    private get k() {
      if (opts.broken) throw new Error(opts.broken)
      return `${this.service}|${this.account}`
    }
    getPassword() {
      return data.get(this.k) ?? null
    }
    setPassword(p: string) {
      data.set(this.k, p)
    }
    deletePassword() {
      return data.delete(this.k)
    }
  }
  return { Entry, data }
}

describe('decideStore', () => {
  const ok = () => ({ ok: true as const })
  const bad = () => ({ ok: false as const, reason: "Couldn't access platform storage" })
  it('uses the keychain when it works', () => {
    expect(decideStore({ forced: undefined, vaultExists: false, recorded: undefined, preferKeychain: true, probe: ok })).toEqual({ kind: 'keychain', reason: 'the OS keychain is usable' })
  })
  it('falls back to the file vault, saying why, when the keychain fails', () => {
    const d = decideStore({ forced: undefined, vaultExists: false, recorded: undefined, preferKeychain: true, probe: bad })
    expect(d.kind).toBe('file')
    expect(d.reason).toContain("Couldn't access platform storage")
  })
  it('keeps using an existing vault file without probing', () => {
    const probe = () => {
      throw new Error('must not probe')
    }
    expect(decideStore({ forced: undefined, vaultExists: true, recorded: undefined, preferKeychain: true, probe }).kind).toBe('file')
    expect(decideStore({ forced: 'file', vaultExists: false, recorded: 'keychain', preferKeychain: true, probe }).kind).toBe('file')
    expect(decideStore({ forced: undefined, vaultExists: false, recorded: undefined, preferKeychain: false, probe }).kind).toBe('file')
  })
  it('refuses to switch silently when the flock recorded the keychain and it now fails', () => {
    expect(() => decideStore({ forced: undefined, vaultExists: false, recorded: 'keychain', preferKeychain: true, probe: bad })).toThrow(/keychain/)
    // Forced to the keychain and it fails: refused too, with its own code (not silently a file).
    let err: unknown
    try {
      decideStore({ forced: 'keychain', vaultExists: false, recorded: undefined, preferKeychain: true, probe: bad })
    } catch (e) {
      err = e
    }
    expect(isMagflockError(err) && err.code).toBe('E_KEYCHAIN_UNAVAILABLE')
  })
})

describe('openSecretStore', () => {
  it('on this machine the real keychain is unusable, so it opens the file vault and says why', async () => {
    const s = await openSecretStore({ layout, environ: {} })
    expect(s.kind).toBe('file')
    expect(s.reason).toMatch(/keychain is not usable/)
    await s.set('a', 'value-aaaa')
    expect(existsSync(layout.secretsVault)).toBe(true)
    expect(await s.get('a')).toBe('value-aaaa')
  })

  it('opens the keychain store with a working keyring and records the choice', async () => {
    const { Entry } = fakeKeyring()
    const s = await openSecretStore({ layout, environ: {}, Entry })
    expect(s.kind).toBe('keychain')
    await s.set('a', 'value-aaaa')
    expect(JSON.parse(readFileSync(path.join(layout.root, 'secrets.json'), 'utf8')).store).toBe('keychain')
    expect(existsSync(layout.secretsVault)).toBe(false)
  })

  it('a read-only open (secrets list/get, audit verify) writes nothing, not even the store marker or the state dir', async () => {
    const { Entry } = fakeKeyring()
    const s = await openSecretStore({ layout, environ: {}, Entry, readOnly: true })
    expect(s.kind).toBe('keychain')
    expect(await s.list()).toEqual([])
    expect(existsSync(layout.root)).toBe(false)
    const file = await openSecretStore({ layout, environ: { MAGFLOCK_SECRETS_STORE: 'file', MAGFLOCK_MASTER_KEY: 'a'.repeat(64) }, readOnly: true })
    expect(await file.list()).toEqual([])
    expect(existsSync(layout.root)).toBe(false)
  })

  it('a vault this flock had and lost is E_VAULT_MISSING on read and write, never silently re-created', async () => {
    const environ = { MAGFLOCK_MASTER_KEY: 'b'.repeat(64) }
    const s = await openSecretStore({ layout, environ, preferKeychain: false })
    await s.set('a', 'value-aaaa')
    expect(JSON.parse(readFileSync(path.join(layout.root, 'secrets.json'), 'utf8')).store).toBe('file')
    rmSync(layout.secretsVault)
    // Even with a usable keychain, the lost vault is not swapped for it.
    const again = await openSecretStore({ layout, environ, Entry: fakeKeyring().Entry })
    expect(again.kind).toBe('file')
    for (const op of [() => again.list(), () => again.get('a'), () => again.set('b', 'value-bbbb')]) {
      const err = await op().then(() => undefined, (e: unknown) => e)
      expect(isMagflockError(err) && err.code).toBe('E_VAULT_MISSING')
    }
    expect(existsSync(layout.secretsVault)).toBe(false)
  })
})

describe('KeychainStore index', () => {
  it('lists names through its index entry, per state dir scope', async () => {
    const { Entry, data } = fakeKeyring()
    const a = new KeychainStore(Entry, 'scope-a')
    const b = new KeychainStore(Entry, 'scope-b')
    await a.set('one', 'value-one')
    await a.set('two', 'value-two')
    await a.set('one', 'value-one-again')
    await b.set('other', 'value-other')
    expect(await a.list()).toEqual(['one', 'two'])
    expect(await b.list()).toEqual(['other'])
    expect(await a.get('one')).toBe('value-one-again')
    expect(await a.delete('one')).toBe(true)
    expect(await a.list()).toEqual(['two'])
    expect(await a.delete('missing')).toBe(false)
    expect([...data.keys()]).toContain('magflock|scope-a/.index')
  })

  it('maps keyring failures to E_KEYCHAIN_UNAVAILABLE', async () => {
    const { Entry } = fakeKeyring({ broken: "Couldn't access platform storage" })
    const err = await new KeychainStore(Entry, 's').get('x').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isMagflockError(err) && err.code).toBe('E_KEYCHAIN_UNAVAILABLE')
  })
})

describe('resolveSecretRefs', () => {
  it('replaces secret:NAME strings anywhere in the config and leaves the input alone', async () => {
    const vault = new FileVault(layout, {})
    await vault.set('kek', 'kek-value-123')
    await vault.set('pw', 'pw-value-456')
    const cfg = defaultConfig()
    cfg.backup.encryptionKey = 'secret:kek'
    cfg.postgres.settings = { some_password: 'secret:pw', other: 'plain' }
    expect(secretRefs(cfg)).toEqual(['kek', 'pw'])
    const r = await resolveSecretRefs(cfg, vault)
    expect(r.backup.encryptionKey).toBe('kek-value-123')
    expect(r.postgres.settings).toEqual({ some_password: 'pw-value-456', other: 'plain' })
    expect(cfg.backup.encryptionKey).toBe('secret:kek')
  })

  it('names a missing secret (E_SECRET_NOT_FOUND), not a value', async () => {
    const cfg = defaultConfig()
    cfg.backup.encryptionKey = 'secret:nope'
    const err = await resolveSecretRefs(cfg, new FileVault(layout, {})).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isMagflockError(err) && err.code).toBe('E_SECRET_NOT_FOUND')
    expect((err as Error).message).toContain('"nope"')
  })
})

describe('missingSecretProblems (config validate --check-secrets)', () => {
  it('names each config key whose secret:NAME is not in the vault, with its source', async () => {
    const { writeFileSync: w, mkdirSync } = await import('node:fs')
    const project = path.join(layout.root, '..', 'project')
    mkdirSync(project, { recursive: true })
    w(path.join(project, 'magflock.yaml'), 'backup:\n  encryptionKey: secret:kek\npostgres:\n  settings:\n    x: secret:present\n')
    const vault = new FileVault(layout, {})
    await vault.set('present', 'present-value')
    const { loadConfig } = await import('../../../src/config/load.js')
    const { missingSecretProblems, assertSecretsPresent } = await import('../../../src/config/check-secrets.js')
    const loaded = await loadConfig({ cwd: project, environ: {} })
    expect(await missingSecretProblems(loaded, vault, project)).toEqual([
      { path: 'backup.encryptionKey', problem: 'refers to secret "kek", which is not in the vault', where: 'magflock.yaml:2' },
    ])
    await vault.set('kek', 'kek-value-here')
    await expect(assertSecretsPresent(loaded, vault, project)).resolves.toBeUndefined()
  })
})

describe('migrateLegacySuperuserPassword', () => {
  it('moves superuser.password into the vault, deletes the file, and is idempotent', async () => {
    const vault = new FileVault(layout, {})
    const { mkdirSync } = await import('node:fs')
    mkdirSync(layout.root, { recursive: true })
    const file = path.join(layout.root, 'superuser.password')
    writeFileSync(file, 'legacy-superuser-pw\n', { mode: 0o600 })
    expect(await migrateLegacySuperuserPassword(layout, vault)).toBe('migrated')
    expect(await vault.get(SUPERUSER_SECRET)).toBe('legacy-superuser-pw')
    expect(existsSync(file)).toBe(false)
    expect(await migrateLegacySuperuserPassword(layout, vault)).toBe('none')
    // A crash after the vault write but before the delete: the rerun only deletes.
    writeFileSync(file, 'legacy-superuser-pw\n', { mode: 0o600 })
    expect(await migrateLegacySuperuserPassword(layout, vault)).toBe('already-migrated')
    expect(existsSync(file)).toBe(false)
  })

  it('touches nothing when the vault holds a different superuser password', async () => {
    const vault = new FileVault(layout, {})
    await vault.set(SUPERUSER_SECRET, 'current-in-vault')
    const file = path.join(layout.root, 'superuser.password')
    writeFileSync(file, 'older-file-pw', { mode: 0o600 })
    expect(await migrateLegacySuperuserPassword(layout, vault)).toBe('conflict')
    expect(readFileSync(file, 'utf8')).toBe('older-file-pw')
    expect(await vault.get(SUPERUSER_SECRET)).toBe('current-in-vault')
  })

  it('keeps the file when the vault write fails', async () => {
    const vault = new FileVault(layout, { MAGFLOCK_MASTER_KEY: 'bad' })
    const { mkdirSync } = await import('node:fs')
    mkdirSync(layout.root, { recursive: true })
    const file = path.join(layout.root, 'superuser.password')
    writeFileSync(file, 'legacy-superuser-pw', { mode: 0o600 })
    await expect(migrateLegacySuperuserPassword(layout, vault)).rejects.toThrow()
    expect(statSync(file).isFile()).toBe(true)
  })
})

describe('Redactor', () => {
  it('scrubs registered values, longest first, including encoded forms', () => {
    const r = new Redactor()
    r.add('abc')
    r.add('s3cr3t/value+x')
    r.add('s3cr3t/value+x-longer')
    expect(r.scrub('a abc s3cr3t/value+x-longer and s3cr3t/value+x')).toBe('a abc *** and ***')
    expect(r.scrub(`url ${encodeURIComponent('s3cr3t/value+x')}`)).toBe('url ***')
    expect(r.scrubValue({ a: ['s3cr3t/value+x'], n: 1 })).toEqual({ a: ['***'], n: 1 })
    expect(pinoRedactHooks(r).streamWrite('{"msg":"s3cr3t/value+x"}')).toBe('{"msg":"***"}')
  })

  it('is fed by the vault', async () => {
    await new FileVault(layout, {}).set('fed', 'fed-by-the-vault-42')
    expect(redactor.scrub('x fed-by-the-vault-42 y')).toBe('x *** y')
  })
})

describe('names and generation', () => {
  it('maps role password secrets to roles', () => {
    expect(roleForSecret(SUPERUSER_SECRET, 'admin')).toBe('admin')
    expect(roleForSecret('postgres.roles.app_rw.password')).toBe('app_rw')
    expect(roleForSecret('backup-kek')).toBeUndefined()
    expect(pendingName('x')).toBe('x@pending')
  })
  it('generates URL-safe secrets of the requested strength', () => {
    const a = generateSecret()
    expect(a).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(generateSecret()).not.toBe(a)
    expect(generateSecret(48)).toHaveLength(64)
  })
})
