import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { TokenStore, hashToken } from '../../../src/kernel/tokens.js'
import { tempDir } from '../../helpers/tmp.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

function dir(): string {
  const tmp = tempDir('mf-tokens-')
  cleanups.push(tmp.cleanup)
  return tmp.dir
}

describe('TokenStore', () => {
  it('creates an mf_ token, stores only its hash, 0600', async () => {
    const d = dir()
    const file = path.join(d, 'tokens.json')
    const store = new TokenStore(file)
    const t = await store.create({ role: 'operator', name: 'deploy' })
    expect(t.token).toMatch(/^mf_[A-Za-z0-9_-]{43}$/)
    expect(t.id).toMatch(/^[0-9a-f]{8}$/)
    expect(t).toMatchObject({ name: 'deploy', role: 'operator' })
    const onDisk = readFileSync(file, 'utf8')
    expect(onDisk).not.toContain(t.token)
    expect(onDisk).not.toContain(t.token.slice(3))
    expect(onDisk).toContain(hashToken(t.token))
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })

  it('verifies a known token and refuses an unknown or near-miss one', async () => {
    const store = new TokenStore(path.join(dir(), 'tokens.json'))
    const a = await store.create({ role: 'viewer', name: 'grafana' })
    const b = await store.create({ role: 'ci', name: 'ci' })
    expect(await store.verify(a.token)).toEqual({ id: a.id, name: 'grafana', role: 'viewer', createdAt: a.createdAt })
    expect((await store.verify(b.token))?.role).toBe('ci')
    expect(await store.verify(a.token.slice(0, -1) + (a.token.endsWith('A') ? 'B' : 'A'))).toBeUndefined()
    expect(await store.verify('')).toBeUndefined()
    expect(await store.verify('mf_nope')).toBeUndefined()
  })

  it('lists tokens without hashes or secrets', async () => {
    const store = new TokenStore(path.join(dir(), 'tokens.json'))
    const a = await store.create({ role: 'admin', name: 'root' })
    const list = await store.list()
    expect(list).toEqual([{ id: a.id, name: 'root', role: 'admin', createdAt: a.createdAt }])
    expect(JSON.stringify(list)).not.toContain(hashToken(a.token))
  })

  it('revokes a token so it no longer verifies, and E_TOKEN_NOT_FOUND for an unknown id', async () => {
    const store = new TokenStore(path.join(dir(), 'tokens.json'))
    const a = await store.create({ role: 'operator', name: 'x' })
    await store.revoke(a.id)
    expect(await store.verify(a.token)).toBeUndefined()
    expect(await store.list()).toEqual([])
    await expect(store.revoke(a.id)).rejects.toMatchObject({ code: 'E_TOKEN_NOT_FOUND' })
  })

  it('sees a revocation made by another process (another store on the same file)', async () => {
    const file = path.join(dir(), 'tokens.json')
    const kernel = new TokenStore(file)
    const a = await kernel.create({ role: 'operator', name: 'x' })
    expect(await kernel.verify(a.token)).toBeDefined()
    await new TokenStore(file).revoke(a.id)
    expect(await kernel.verify(a.token)).toBeUndefined()
  })

  it('keeps every token under concurrent creates', async () => {
    const store = new TokenStore(path.join(dir(), 'tokens.json'))
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => store.create({ role: 'viewer', name: `t${i}` })))
    expect((await store.list()).length).toBe(20)
    for (const t of made) expect(await store.verify(t.token)).toBeDefined()
  })

  it('refuses a corrupt tokens.json with E_CORRUPT_STATE instead of resetting it', async () => {
    const file = path.join(dir(), 'tokens.json')
    writeFileSync(file, '{ not json')
    const store = new TokenStore(file)
    await expect(store.verify('mf_x')).rejects.toMatchObject({ code: 'E_CORRUPT_STATE' })
    await expect(store.create({ role: 'admin', name: 'a' })).rejects.toMatchObject({ code: 'E_CORRUPT_STATE' })
    expect(readFileSync(file, 'utf8')).toBe('{ not json')
    writeFileSync(file, JSON.stringify({ version: 1, tokens: [{ id: 'x' }] }))
    await expect(store.list()).rejects.toMatchObject({ code: 'E_CORRUPT_STATE' })
  })

  describe('ensureAdmin', () => {
    it('creates an admin token file 0600 on first use and keeps it afterwards', async () => {
      const d = dir()
      const store = new TokenStore(path.join(d, 'tokens.json'))
      const tokenFile = path.join(d, 'admin.token')
      expect(await store.ensureAdmin(tokenFile)).toEqual({ created: true })
      const token = readFileSync(tokenFile, 'utf8').trim()
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
      expect((await store.verify(token))?.role).toBe('admin')
      chmodSync(tokenFile, 0o644)
      expect(await new TokenStore(path.join(d, 'tokens.json')).ensureAdmin(tokenFile)).toEqual({ created: false })
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600) // tightened again
      expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token)
      expect((await store.list()).length).toBe(1)
    })

    it('refuses with E_TOKEN_STORE_MISMATCH when the file holds a token the store does not know', async () => {
      const d = dir()
      const tokenFile = path.join(d, 'admin.token')
      await new TokenStore(path.join(d, 'old.json')).ensureAdmin(tokenFile)
      const store = new TokenStore(path.join(d, 'tokens.json'))
      await expect(store.ensureAdmin(tokenFile)).rejects.toMatchObject({ code: 'E_TOKEN_STORE_MISMATCH' })
      expect(await store.list()).toEqual([])
    })

    it('refuses when the admin token file holds a token that was revoked', async () => {
      const d = dir()
      const store = new TokenStore(path.join(d, 'tokens.json'))
      const tokenFile = path.join(d, 'admin.token')
      await store.ensureAdmin(tokenFile)
      const [admin] = await store.list()
      await store.revoke(admin?.id as string)
      await expect(store.ensureAdmin(tokenFile)).rejects.toMatchObject({ code: 'E_TOKEN_STORE_MISMATCH' })
    })
  })
})
