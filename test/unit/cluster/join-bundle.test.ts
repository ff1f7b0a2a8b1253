import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkBundleFor,
  createInvite,
  generateJoinCode,
  importBundle,
  importRenewal,
  normalizeJoinCode,
  undoBundleImport,
  openBundle,
  parseBundle,
  writeBundleFile,
  type BundlePayload,
} from '../../../src/cluster/join-bundle.js'
import { defaultConfig, type MagflockConfig } from '../../../src/config/schema.js'
import { isMagflockError } from '../../../src/errors/index.js'
import { stateLayout } from '../../../src/platform/paths.js'
import { openSecretStore } from '../../../src/secrets/store.js'
import type { SecretStore } from '../../../src/secrets/secret-store.js'
import { certMatches, createCa, describeCert } from '../../../src/tls/certs.js'
import { saveClusterSettings } from '../../../src/cluster/node-settings.js'
import { tempDir } from '../../helpers/tmp.js'

/**
 * The join bundle (src/cluster/join-bundle.ts) without a kernel: a real flock CA and real
 * file vaults in two state directories ("a" invites, "b" imports).
 */
const tmp = tempDir('mf-joinbundle-')
const environ = { MAGFLOCK_SECRETS_STORE: 'file', MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') }
const config: MagflockConfig = { ...defaultConfig(), flock: 'prod' }
const SU = 'superuser-password-0123456789abcdef'
const REPL = 'replicator-password-0123456789abcdef'

let aRoot: string
let aStore: SecretStore
let caPem: string
let caKey: string

async function storeOf(root: string): Promise<SecretStore> {
  return openSecretStore({ layout: stateLayout(root), environ })
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (isMagflockError(err)) return err.code
    throw err
  }
  return 'resolved'
}

function invite(request: { node: string; sans: string[]; etcd?: string[]; validHours?: number; renew?: boolean }, existing: string[] = ['a']) {
  return createInvite({
    stateRoot: aRoot,
    config,
    secrets: aStore,
    inviter: { node: 'a', etcd: ['https://10.0.0.1:2379'], ttlMs: 5000 },
    existingNodes: async () => existing,
    request,
  })
}

beforeAll(async () => {
  aRoot = path.join(tmp.dir, 'a')
  mkdirSync(path.join(aRoot, 'tls'), { recursive: true })
  const ca = await createCa('prod', 30)
  caPem = ca.certPem
  caKey = ca.keyPem
  writeFileSync(path.join(aRoot, 'tls', 'ca.crt'), ca.certPem)
  aStore = await storeOf(aRoot)
  await aStore.set('tls.ca.key', ca.keyPem)
  await aStore.set('postgres.superuser.password', SU)
  await aStore.set('replication.replicator.password', REPL)
})
afterAll(() => tmp.cleanup())

describe('the join code', () => {
  it('is 100 random bits in Crockford base32, and reads back however it is typed', () => {
    const c = generateJoinCode()
    expect(c).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){3}$/)
    expect(generateJoinCode()).not.toBe(c)
    const plain = c.replace(/-/g, '')
    expect(normalizeJoinCode(c.toLowerCase())).toBe(plain)
    expect(normalizeJoinCode(` ${plain.slice(0, 10)} ${plain.slice(10)} `)).toBe(plain)
    expect(normalizeJoinCode('O0IL1-00000-00000-00000')).toBe('00111000000000000000')
    expect(normalizeJoinCode('short')).toBeUndefined()
    expect(normalizeJoinCode('UUUUU-00000-00000-00000')).toBeUndefined()
  })
})

describe('invite → bundle → open', () => {
  it('round trip: the new node gets its own certificate from the flock CA, the passwords, flock and etcd; never the CA key', async () => {
    const r = await invite({ node: 'b', sans: ['10.0.0.2', 'db-b.example.org'] })
    expect(r.summary).toMatchObject({ node: 'b', flock: 'prod', invitedBy: 'a', etcd: ['https://10.0.0.1:2379'] })
    expect(r.summary.certNames).toEqual(expect.arrayContaining(['b', '10.0.0.2', 'db-b.example.org', '127.0.0.1', 'localhost']))
    // In the clear: no secret, no key, not even the certificate.
    for (const s of [SU, REPL, caKey.split('\n')[1]!, 'PRIVATE KEY', 'CERTIFICATE']) expect(r.bundle).not.toContain(s)
    const h = parseBundle(r.bundle)
    expect(h).toMatchObject({ magflock: 'magflock-join-bundle', v: 1, node: 'b', flock: 'prod', invitedBy: 'a', cipher: 'aes-256-gcm' })
    expect(Date.parse(h.expiresAt) - Date.parse(h.createdAt)).toBe(24 * 3_600_000)
    const p = await openBundle(h, r.code)
    expect(p.secrets).toEqual({ superuser: SU, replicator: REPL })
    expect(p.etcd).toEqual(['https://10.0.0.1:2379'])
    expect(p.ttlMs).toBe(5000)
    expect(p.tls.caCert).toBe(caPem)
    expect(certMatches(p.tls.nodeCert, p.tls.nodeKey, caPem)).toBe(true)
    expect(describeCert(p.tls.nodeCert).fingerprint256).toBe(r.summary.certFingerprint)
    expect(JSON.stringify(p)).not.toContain(caKey.split('\n')[1]!)
    // The code as a person might type it opens it too.
    expect((await openBundle(h, r.code.toLowerCase().replace(/-/g, ' '))).node).toBe('b')
  })

  it('--etcd and --valid-hours reach the bundle', async () => {
    const r = await invite({ node: 'c', sans: ['10.0.0.3'], etcd: ['https://10.0.0.3:2379'], validHours: 2 })
    const h = parseBundle(r.bundle)
    expect(Date.parse(h.expiresAt) - Date.parse(h.createdAt)).toBe(2 * 3_600_000)
    expect((await openBundle(h, r.code)).etcd).toEqual(['https://10.0.0.3:2379'])
  })

  it('a wrong code, a malformed code and every tampered byte are refused', async () => {
    const r = await invite({ node: 'b', sans: ['10.0.0.2'] })
    const h = parseBundle(r.bundle)
    expect(await codeOf(openBundle(h, generateJoinCode()))).toBe('E_NODE_BUNDLE_CODE_WRONG')
    expect(await codeOf(openBundle(h, 'not a code'))).toBe('E_NODE_BUNDLE_CODE_WRONG')
    const flip = (s: string) => Buffer.from(Buffer.from(s, 'base64').map((b, i) => (i === 3 ? b ^ 1 : b))).toString('base64')
    for (const tampered of [
      { ...h, data: flip(h.data) },
      { ...h, tag: flip(h.tag) },
      { ...h, iv: flip(h.iv) },
      { ...h, node: 'c' }, // the header is authenticated: a bundle cannot be relabelled
      { ...h, expiresAt: new Date(Date.parse(h.expiresAt) + 86_400_000).toISOString() },
      { ...h, invitedBy: 'z' },
    ]) {
      const again = parseBundle(JSON.stringify(tampered))
      expect(await codeOf(openBundle(again, r.code)), JSON.stringify(Object.keys(tampered))).toBe('E_NODE_BUNDLE_CODE_WRONG')
    }
  })

  it('truncated, not JSON, not a bundle, another version or a weakened KDF: E_NODE_BUNDLE_CORRUPT before any code is tried', async () => {
    const r = await invite({ node: 'b', sans: ['10.0.0.2'] })
    const h = parseBundle(r.bundle)
    for (const text of [
      r.bundle.slice(0, Math.floor(r.bundle.length / 2)),
      '',
      'hello',
      JSON.stringify({ magflock: 'something-else' }),
      JSON.stringify({ ...h, v: 2 }),
      JSON.stringify({ ...h, kdf: { ...h.kdf, N: 2 } }),
      JSON.stringify({ ...h, data: undefined }),
      JSON.stringify({ ...h, node: '../etc' }),
    ]) {
      let code = 'parsed'
      try {
        parseBundle(text)
      } catch (err) {
        code = isMagflockError(err) ? err.code : String(err)
      }
      expect(code, text.slice(0, 60)).toBe('E_NODE_BUNDLE_CORRUPT')
    }
  })

  it('checks the node, the flock and the expiry before asking for the code', async () => {
    const h = parseBundle((await invite({ node: 'b', sans: ['10.0.0.2'], validHours: 1 })).bundle)
    const codeOfSync = (f: () => void) => {
      try {
        f()
        return 'ok'
      } catch (err) {
        return isMagflockError(err) ? err.code : String(err)
      }
    }
    expect(codeOfSync(() => checkBundleFor(h, { node: 'b', flock: 'prod' }))).toBe('ok')
    expect(codeOfSync(() => checkBundleFor(h, { flock: 'prod' }))).toBe('ok')
    expect(codeOfSync(() => checkBundleFor(h, { node: 'c', flock: 'prod' }))).toBe('E_NODE_BUNDLE_WRONG_NODE')
    expect(codeOfSync(() => checkBundleFor(h, { node: 'b', flock: 'staging' }))).toBe('E_NODE_BUNDLE_WRONG_FLOCK')
    expect(codeOfSync(() => checkBundleFor(h, { node: 'b', flock: 'prod', now: new Date(Date.now() + 2 * 3_600_000) }))).toBe('E_NODE_BUNDLE_EXPIRED')
  })

  it('invite refuses a taken name, a bad name or address, and a node without the CA key', async () => {
    expect(await codeOf(invite({ node: 'b', sans: ['10.0.0.2'] }, ['a', 'b']))).toBe('E_NODE_INVITE_EXISTS')
    expect(await codeOf(invite({ node: 'a', sans: ['10.0.0.2'] }, []))).toBe('E_NODE_INVITE_EXISTS')
    expect(await codeOf(invite({ node: 'B!', sans: ['10.0.0.2'] }))).toBe('E_NODE_NAME_INVALID')
    for (const san of ['127.0.0.1', '0.0.0.0', '::1', 'localhost', 'bad name', '-x.example']) {
      expect(await codeOf(invite({ node: 'b', sans: [san] })), san).toBe('E_NODE_INVITE_SAN_INVALID')
    }
    expect(await codeOf(invite({ node: 'b', sans: [] }))).toBe('E_NODE_INVITE_SAN_INVALID')
    const other = path.join(tmp.dir, 'no-ca')
    mkdirSync(path.join(other, 'tls'), { recursive: true })
    const store = await storeOf(other)
    const run = () => createInvite({ stateRoot: other, config, secrets: store, inviter: { node: 'x', etcd: ['http://127.0.0.1:2379'], ttlMs: 3000 }, existingNodes: async () => [], request: { node: 'b', sans: ['10.0.0.2'] } })
    expect(await codeOf(run())).toBe('E_NODE_INVITE_NO_CA')
    writeFileSync(path.join(other, 'tls', 'ca.crt'), caPem)
    expect(await codeOf(run())).toBe('E_NODE_INVITE_NO_CA')
    await store.set('tls.ca.key', (await createCa('prod', 30)).keyPem) // a key of another CA
    await store.set('postgres.superuser.password', SU)
    await store.set('replication.replicator.password', REPL)
    expect(await codeOf(run())).toBe('E_NODE_INVITE_NO_CA')
    const own = { ...config, tls: { ...config.tls, caFile: 'ca.pem' } }
    expect(await codeOf(createInvite({ stateRoot: aRoot, config: own, secrets: aStore, inviter: { node: 'a', etcd: ['http://127.0.0.1:2379'], ttlMs: 3000 }, existingNodes: async () => [], request: { node: 'b', sans: ['10.0.0.2'] } }))).toBe('E_TLS_OPERATOR_MANAGED')
  })
})

describe('import on the joining host: all or nothing', () => {
  let payload: BundlePayload
  beforeAll(async () => {
    const r = await invite({ node: 'b', sans: ['10.0.0.2'] })
    payload = await openBundle(parseBundle(r.bundle), r.code)
  })

  const fresh = (name: string) => {
    const root = path.join(tmp.dir, name)
    mkdirSync(root, { recursive: true })
    return root
  }
  const nothingIn = async (root: string) => {
    const s = await storeOf(root)
    for (const n of ['tls.node.key', 'postgres.superuser.password', 'replication.replicator.password', 'tls.ca.key']) expect(await s.get(n), n).toBeUndefined()
    expect(existsSync(path.join(root, 'tls', 'ca.crt'))).toBe(false)
    expect(existsSync(path.join(root, 'tls', 'node.crt'))).toBe(false)
  }

  it('writes the node key and passwords to the vault and the certificates to <state>/tls; again: unchanged', async () => {
    const root = fresh('b1')
    const store = await storeOf(root)
    const r = await importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.2' })
    expect(r.imported.sort()).toEqual(['postgres.superuser.password', 'replication.replicator.password', 'tls.node.key', 'tls/ca.crt', 'tls/node.crt'])
    expect(await store.get('postgres.superuser.password')).toBe(SU)
    expect(await store.get('replication.replicator.password')).toBe(REPL)
    expect(await store.get('tls.node.key')).toBe(payload.tls.nodeKey)
    expect(await store.get('tls.ca.key')).toBeUndefined()
    expect(readFileSync(path.join(root, 'tls', 'ca.crt'), 'utf8')).toBe(caPem)
    expect(statSync(path.join(root, 'tls', 'node.crt')).mode & 0o777).toBe(0o644)
    const again = await importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.2' })
    expect(again).toEqual({ imported: [], unchanged: expect.arrayContaining(r.imported) as string[] })
  })

  it('a different value already here is a conflict, and nothing is written', async () => {
    const root = fresh('b2')
    const store = await storeOf(root)
    await store.set('postgres.superuser.password', 'another-password-here')
    expect(await codeOf(importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.2' }))).toBe('E_NODE_BUNDLE_CONFLICT')
    expect(await store.get('tls.node.key')).toBeUndefined()
    expect(existsSync(path.join(root, 'tls'))).toBe(false)
    const root2 = fresh('b3')
    mkdirSync(path.join(root2, 'tls'))
    writeFileSync(path.join(root2, 'tls', 'ca.crt'), (await createCa('prod', 30)).certPem)
    expect(await codeOf(importBundle({ stateRoot: root2, config, secrets: await storeOf(root2), payload, listen: '10.0.0.2' }))).toBe('E_NODE_BUNDLE_CONFLICT')
    expect(await (await storeOf(root2)).get('postgres.superuser.password')).toBeUndefined()
  })

  it('refuses a --listen outside the certificate, another flock, own certificates in the config, or a certificate that does not match', async () => {
    const root = fresh('b4')
    const store = await storeOf(root)
    expect(await codeOf(importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.9' }))).toBe('E_NODE_BUNDLE_LISTEN')
    expect(await codeOf(importBundle({ stateRoot: root, config: { ...config, flock: 'other' }, secrets: store, payload, listen: '10.0.0.2' }))).toBe('E_NODE_BUNDLE_WRONG_FLOCK')
    expect(await codeOf(importBundle({ stateRoot: root, config: { ...config, tls: { ...config.tls, certFile: 'x.crt' } }, secrets: store, payload, listen: '10.0.0.2' }))).toBe('E_NODE_BUNDLE_CONFLICT')
    const other = await invite({ node: 'b', sans: ['10.0.0.2'] })
    const otherKey = (await openBundle(parseBundle(other.bundle), other.code)).tls.nodeKey
    expect(await codeOf(importBundle({ stateRoot: root, config, secrets: store, payload: { ...payload, tls: { ...payload.tls, nodeKey: otherKey } }, listen: '10.0.0.2' }))).toBe('E_NODE_BUNDLE_CORRUPT')
    await nothingIn(root)
  })

  it('undoBundleImport takes back what the import wrote (a join whose kernel did not come up), not what was there', async () => {
    const root = fresh('b6')
    const store = await storeOf(root)
    await store.set('postgres.superuser.password', SU) // already here, equal: "unchanged"
    const r = await importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.2' })
    expect(r.unchanged).toEqual(['postgres.superuser.password'])
    await undoBundleImport({ stateRoot: root, secrets: store, imported: r })
    expect(await store.get('postgres.superuser.password')).toBe(SU)
    for (const n of ['tls.node.key', 'replication.replicator.password']) expect(await store.get(n), n).toBeUndefined()
    expect(existsSync(path.join(root, 'tls', 'node.crt'))).toBe(false)
    expect(existsSync(path.join(root, 'tls', 'ca.crt'))).toBe(false)
    // The same bundle imports again afterwards.
    expect((await importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.2' })).imported.length).toBe(4)
  })

  it('a write that fails undoes the writes before it', async () => {
    const root = fresh('b5')
    writeFileSync(path.join(root, 'tls'), 'a file where the tls directory goes')
    const store = await storeOf(root)
    await expect(importBundle({ stateRoot: root, config, secrets: store, payload, listen: '10.0.0.2' })).rejects.toThrow()
    for (const n of ['tls.node.key', 'postgres.superuser.password', 'replication.replicator.password']) expect(await store.get(n), n).toBeUndefined()
  })
})

describe('renewal (node invite --renew, then tls renew on that node)', () => {
  const fresh = (name: string) => {
    const root = path.join(tmp.dir, name)
    mkdirSync(root, { recursive: true })
    return root
  }
  /** A node "b" that joined with a bundle: its settings, key, certificate and the passwords. */
  async function joinedNode(name: string): Promise<{ root: string; store: SecretStore }> {
    const root = fresh(name)
    const store = await storeOf(root)
    const j = await invite({ node: 'b', sans: ['10.0.0.2'] })
    await importBundle({ stateRoot: root, config, secrets: store, payload: await openBundle(parseBundle(j.bundle), j.code), listen: '10.0.0.2' })
    await saveClusterSettings(root, { etcd: ['https://10.0.0.1:2379'], node: 'b', listen: '10.0.0.2' }, 'replica')
    return { root, store }
  }
  const renewal = async (o: { node?: string; sans?: string[] } = {}) => {
    const r = await invite({ node: o.node ?? 'b', sans: o.sans ?? ['10.0.0.2'], renew: true }, ['a', 'b'])
    return { r, payload: await openBundle(parseBundle(r.bundle), r.code) }
  }

  it('invite --renew: a new certificate for a node the flock has, without the passwords; not for an unknown node or the inviter', async () => {
    const { r, payload } = await renewal()
    expect(r.summary).toMatchObject({ node: 'b', renew: true })
    expect(payload.renew).toBe(true)
    expect(payload.secrets).toBeUndefined()
    for (const s of [SU, REPL]) expect(JSON.stringify(payload)).not.toContain(s)
    expect(certMatches(payload.tls.nodeCert, payload.tls.nodeKey, caPem)).toBe(true)
    expect(await codeOf(invite({ node: 'c', sans: ['10.0.0.3'], renew: true }, ['a', 'b']))).toBe('E_NODE_RENEW_UNKNOWN')
    expect(await codeOf(invite({ node: 'a', sans: ['10.0.0.1'], renew: true }, ['a', 'b']))).toBe('E_NODE_RENEW_SELF')
    // A renewal is not a join: node join --bundle refuses it, and nothing is written.
    const root = fresh('r0')
    expect(await codeOf(importBundle({ stateRoot: root, config, secrets: await storeOf(root), payload, listen: '10.0.0.2' }))).toBe('E_NODE_BUNDLE_KIND')
    expect(existsSync(path.join(root, 'tls'))).toBe(false)
  })

  it('replaces the node key and certificate (the passwords stay); the same renewal again changes nothing', async () => {
    const { root, store } = await joinedNode('r1')
    const oldCert = readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8')
    const { payload } = await renewal()
    const r = await importRenewal({ stateRoot: root, config, secrets: store, payload })
    expect(r).toEqual({ node: 'b', replaced: ['tls/node.crt', 'tls.node.key'], unchanged: ['tls/ca.crt'], caReplaced: false })
    expect(readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8')).toBe(payload.tls.nodeCert)
    expect(readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8')).not.toBe(oldCert)
    expect(await store.get('tls.node.key')).toBe(payload.tls.nodeKey)
    expect(await store.get('postgres.superuser.password')).toBe(SU)
    expect(await store.get('replication.replicator.password')).toBe(REPL)
    expect(await importRenewal({ stateRoot: root, config, secrets: store, payload })).toMatchObject({ replaced: [], caReplaced: false })
  })

  it('refuses a join bundle, another node, another flock, a state directory that never joined, a certificate without its listen address or not matching; nothing changes', async () => {
    const { root, store } = await joinedNode('r2')
    const before = { cert: readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8'), key: await store.get('tls.node.key') }
    const { payload } = await renewal()
    const j = await invite({ node: 'b', sans: ['10.0.0.2'] })
    const join = await openBundle(parseBundle(j.bundle), j.code)
    expect(await codeOf(importRenewal({ stateRoot: root, config, secrets: store, payload: join }))).toBe('E_NODE_BUNDLE_KIND')
    expect(await codeOf(importRenewal({ stateRoot: root, config: { ...config, flock: 'other' }, secrets: store, payload }))).toBe('E_NODE_BUNDLE_WRONG_FLOCK')
    expect(await codeOf(importRenewal({ stateRoot: root, config: { ...config, tls: { ...config.tls, certFile: 'x.crt' } }, secrets: store, payload }))).toBe('E_TLS_OPERATOR_MANAGED')
    expect(await codeOf(importRenewal({ stateRoot: root, config, secrets: store, payload: { ...payload, node: 'c' } }))).toBe('E_NODE_BUNDLE_WRONG_NODE')
    expect(await codeOf(importRenewal({ stateRoot: root, config, secrets: store, payload: (await renewal({ sans: ['10.0.0.9'] })).payload }))).toBe('E_NODE_BUNDLE_LISTEN')
    expect(await codeOf(importRenewal({ stateRoot: root, config, secrets: store, payload: { ...payload, tls: { ...payload.tls, nodeKey: join.tls.nodeKey } } }))).toBe('E_NODE_BUNDLE_CORRUPT')
    expect(readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8')).toBe(before.cert)
    expect(await store.get('tls.node.key')).toBe(before.key)
    const never = fresh('r3')
    expect(await codeOf(importRenewal({ stateRoot: never, config, secrets: await storeOf(never), payload }))).toBe('E_NODE_RENEW_NOT_JOINED')
    await saveClusterSettings(never, { etcd: ['https://10.0.0.1:2379'], node: 'b', listen: '10.0.0.2' }, 'replica')
    expect(await codeOf(importRenewal({ stateRoot: never, config, secrets: await storeOf(never), payload }))).toBe('E_NODE_RENEW_NOT_JOINED')
    expect(existsSync(path.join(never, 'tls'))).toBe(false)
  })

  it('takes a new flock CA certificate with it; a write that fails puts back the ones before it', async () => {
    const { root, store } = await joinedNode('r4')
    const before = { cert: readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8'), ca: readFileSync(path.join(root, 'tls', 'ca.crt'), 'utf8'), key: await store.get('tls.node.key') }
    // The flock CA was replaced on "a" (tls rotate --ca): the renewal comes from the new one.
    const ca2 = await createCa('prod', 30)
    const a2 = fresh('a2')
    mkdirSync(path.join(a2, 'tls'))
    writeFileSync(path.join(a2, 'tls', 'ca.crt'), ca2.certPem)
    const a2Store = await storeOf(a2)
    await a2Store.set('tls.ca.key', ca2.keyPem)
    const r = await createInvite({ stateRoot: a2, config, secrets: a2Store, inviter: { node: 'a', etcd: ['https://10.0.0.1:2379'], ttlMs: 5000 }, existingNodes: async () => ['a', 'b'], request: { node: 'b', sans: ['10.0.0.2'], renew: true } })
    const payload = await openBundle(parseBundle(r.bundle), r.code)
    // The key's write fails: both certificates are put back.
    const failing: SecretStore = Object.assign(Object.create(store) as SecretStore, { set: async () => Promise.reject(new Error('vault write failed')) })
    await expect(importRenewal({ stateRoot: root, config, secrets: failing, payload })).rejects.toThrow('vault write failed')
    expect(readFileSync(path.join(root, 'tls', 'node.crt'), 'utf8')).toBe(before.cert)
    expect(readFileSync(path.join(root, 'tls', 'ca.crt'), 'utf8')).toBe(before.ca)
    expect(await store.get('tls.node.key')).toBe(before.key)
    const ok = await importRenewal({ stateRoot: root, config, secrets: store, payload })
    expect(ok).toMatchObject({ replaced: ['tls/ca.crt', 'tls/node.crt', 'tls.node.key'], caReplaced: true })
    expect(readFileSync(path.join(root, 'tls', 'ca.crt'), 'utf8')).toBe(ca2.certPem)
  })
})

describe('the bundle file', () => {
  it('is created 0600 and never overwritten', async () => {
    const file = path.join(tmp.dir, 'b.join')
    await writeBundleFile(file, 'x\n')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(await codeOf(writeBundleFile(file, 'y\n'))).toBe('E_NODE_INVITE_OUT_EXISTS')
    expect(readFileSync(file, 'utf8')).toBe('x\n')
  })
})
