import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createInvite } from '../../src/cluster/join-bundle.js'
import type { NodeJoinResult } from '../../src/commands/node/join.js'
import { defaultConfig } from '../../src/config/schema.js'
import { stateLayout } from '../../src/platform/paths.js'
import { openSecretStore } from '../../src/secrets/store.js'
import type { TlsStatus } from '../../src/tls/material.js'
import { createCa } from '../../src/tls/certs.js'
import { cli } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * `node join --bundle` through the built CLI on a new host's project: every bad input is
 * refused with its E_ code and leaves the state directory empty; a good bundle imports the
 * node's certificate, key, the CA certificate and the passwords (--import-only: no kernel, no
 * etcd needed). The bundle comes from the same createInvite the kernel's `node.invite` route
 * runs, over a real flock CA and vault ("a"); the invite through a node's kernel and the whole
 * join with a clone run in test/chaos/multihost-kernel.test.ts (network namespaces). Here,
 * `node invite` on a kernel that is not a node is refused.
 */
const tmp = tempDir('mf-joinb-')
const masterKey = Buffer.alloc(32, 9).toString('base64')
const SU = 'e2e-superuser-password-0123456789'
const REPL = 'e2e-replicator-password-0123456789'
let bundleFile: string
let code: string
let renewFile: string
let renewCode: string
let project: string

const env = () => ({ MAGFLOCK_MASTER_KEY: masterKey, MAGFLOCK_PREFS_DIR: path.join(tmp.dir, 'prefs') })
const run = <T = unknown>(args: string[], o: { input?: string } = {}) => cli<T>(args, { cwd: project, env: env(), ...o })
const errorOf = (r: { exitCode: number; json?: { ok: boolean; error?: { code: string } } | undefined }) => [r.exitCode, r.json?.ok === false ? r.json.error?.code : 'ok']

async function nothingImported(): Promise<void> {
  const list = await run<{ secrets: Array<{ name: string }> }>(['secrets', 'list', '--json'])
  expect(list.json?.ok && list.json.data.secrets.map((s) => s.name)).toEqual([])
  expect(existsSync(path.join(project, '.magflock', 'tls', 'node.crt'))).toBe(false)
  expect(existsSync(path.join(project, '.magflock', 'tls', 'ca.crt'))).toBe(false)
  expect(existsSync(path.join(project, '.magflock', 'cluster.json'))).toBe(false)
}

beforeAll(async () => {
  // "a": a flock CA and the flock's passwords in a real vault.
  const a = path.join(tmp.dir, 'a')
  mkdirSync(path.join(a, 'tls'), { recursive: true })
  const ca = await createCa('prod', 30)
  writeFileSync(path.join(a, 'tls', 'ca.crt'), ca.certPem)
  const store = await openSecretStore({ layout: stateLayout(a), environ: { MAGFLOCK_SECRETS_STORE: 'file', MAGFLOCK_MASTER_KEY: masterKey } })
  await store.set('tls.ca.key', ca.keyPem)
  await store.set('postgres.superuser.password', SU)
  await store.set('replication.replicator.password', REPL)
  const inv = await createInvite({
    stateRoot: a,
    config: { ...defaultConfig(), flock: 'prod' },
    secrets: store,
    inviter: { node: 'a', etcd: ['https://10.0.0.1:2379'], ttlMs: 4000 },
    existingNodes: async () => ['a'],
    request: { node: 'b', sans: ['10.0.0.2'] },
  })
  bundleFile = path.join(tmp.dir, 'b.join')
  writeFileSync(bundleFile, inv.bundle, { mode: 0o600 })
  code = inv.code
  const ren = await createInvite({
    stateRoot: a,
    config: { ...defaultConfig(), flock: 'prod' },
    secrets: store,
    inviter: { node: 'a', etcd: ['https://10.0.0.1:2379'], ttlMs: 4000 },
    existingNodes: async () => ['a', 'b'],
    request: { node: 'b', sans: ['10.0.0.2'], renew: true },
  })
  renewFile = path.join(tmp.dir, 'b.renew')
  writeFileSync(renewFile, ren.bundle, { mode: 0o600 })
  renewCode = ren.code
  // "b": a new host's project.
  project = path.join(tmp.dir, 'b')
  mkdirSync(project)
  writeFileSync(path.join(project, 'magflock.yaml'), 'flock: prod\n')
})
afterAll(() => tmp.cleanup())

describe('node join --bundle on a new host (built CLI)', () => {
  it('bad input of every kind: a clear E_ code, and nothing imported', async () => {
    const base = ['node', 'join', '--bundle', bundleFile, '--listen', '10.0.0.2', '--import-only', '--json']
    expect(errorOf(await run(base))).toEqual([2, 'E_NODE_BUNDLE_CODE_MISSING'])
    expect(errorOf(await run([...base, '--code', 'AAAAA-AAAAA-AAAAA-AAAAA']))).toEqual([9, 'E_NODE_BUNDLE_CODE_WRONG'])
    expect(errorOf(await run([...base, '--code', 'nonsense']))).toEqual([9, 'E_NODE_BUNDLE_CODE_WRONG'])
    expect(errorOf(await run([...base, '--code', code, '--node', 'c']))).toEqual([2, 'E_NODE_BUNDLE_WRONG_NODE'])
    expect(errorOf(await run(['node', 'join', '--bundle', bundleFile, '--listen', '10.0.0.9', '--import-only', '--code', code, '--json']))).toEqual([2, 'E_NODE_BUNDLE_LISTEN'])
    expect(errorOf(await run(['node', 'join', '--bundle', bundleFile, '--listen', '127.0.0.1', '--import-only', '--code', code, '--json']))).toEqual([2, 'E_NODE_LISTEN_INVALID'])
    expect(errorOf(await run(['node', 'join', '--bundle', path.join(tmp.dir, 'none.join'), '--listen', '10.0.0.2', '--code', code, '--json']))).toEqual([2, 'E_NODE_BUNDLE_UNREADABLE'])
    const cut = path.join(tmp.dir, 'cut.join')
    writeFileSync(cut, readFileSync(bundleFile, 'utf8').slice(0, 300))
    expect(errorOf(await run(['node', 'join', '--bundle', cut, '--listen', '10.0.0.2', '--code', code, '--json']))).toEqual([2, 'E_NODE_BUNDLE_CORRUPT'])
    const edited = path.join(tmp.dir, 'edited.join')
    writeFileSync(edited, readFileSync(bundleFile, 'utf8').replace(/"expiresAt": "\d{4}/, '"expiresAt": "2999'))
    expect(errorOf(await run(['node', 'join', '--bundle', edited, '--listen', '10.0.0.2', '--code', code, '--import-only', '--json']))).toEqual([9, 'E_NODE_BUNDLE_CODE_WRONG'])
    // --code and --import-only need --bundle; without it the node flags are required.
    expect(errorOf(await run(['node', 'join', '--listen', '10.0.0.2', '--code', code, '--json']))[0]).toBe(2)
    expect(errorOf(await run(['node', 'join', '--listen', '10.0.0.2', '--node', 'b', '--json']))).toEqual([2, 'E_NODE_FLAGS_INCOMPLETE'])
    // A renewal bundle is not a join bundle; `tls renew` on a host that never joined is refused.
    expect(errorOf(await run(['node', 'join', '--bundle', renewFile, '--listen', '10.0.0.2', '--import-only', '--code', renewCode, '--json']))).toEqual([2, 'E_NODE_BUNDLE_KIND'])
    expect(errorOf(await run(['tls', 'renew', '--bundle', renewFile, '--code', renewCode, '--json']))).toEqual([5, 'E_NODE_RENEW_NOT_JOINED'])
    expect(errorOf(await run(['tls', 'renew', '--json']))[0]).toBe(2)
    await nothingImported()
    // Another flock in magflock.yaml.
    writeFileSync(path.join(project, 'magflock.yaml'), 'flock: staging\n')
    expect(errorOf(await run([...base, '--code', code]))).toEqual([2, 'E_NODE_BUNDLE_WRONG_FLOCK'])
    writeFileSync(path.join(project, 'magflock.yaml'), 'flock: prod\n')
    // A different password already here: a conflict, and none of the rest is written.
    expect((await run(['secrets', 'set', 'postgres.superuser.password', '--from-stdin', '--json'], { input: 'some-other-password' })).exitCode).toBe(0)
    const conflict = await run([...base, '--code', code])
    expect(errorOf(conflict)).toEqual([6, 'E_NODE_BUNDLE_CONFLICT'])
    expect(conflict.stdout).toContain('postgres.superuser.password')
    expect((await run(['secrets', 'rm', 'postgres.superuser.password', '--json'])).exitCode).toBe(0)
    await nothingImported()
  }, 120_000)

  it('--import-only: the certificate, key, CA certificate and passwords land where a node kernel reads them; the CA key does not', async () => {
    const r = await run<NodeJoinResult>(['node', 'join', '--bundle', bundleFile, '--code', code.toLowerCase(), '--listen', '10.0.0.2', '--import-only', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const data = r.json?.ok ? r.json.data : undefined
    expect(data).toMatchObject({ started: false, node: 'b', listen: '10.0.0.2', etcd: ['https://10.0.0.1:2379'] })
    expect(data?.bundle?.imported.sort()).toEqual(['postgres.superuser.password', 'replication.replicator.password', 'tls.node.key', 'tls/ca.crt', 'tls/node.crt'])
    for (const s of [SU, REPL, 'PRIVATE KEY']) expect(r.stdout + r.stderr).not.toContain(s)
    const tls = await run<TlsStatus>(['tls', 'status', '--json'])
    const st = tls.json?.ok ? tls.json.data : undefined
    expect(st?.source).toBe('flock-ca')
    expect(st?.cert?.subject).toContain('CN=b')
    expect(st?.cert?.sans).toEqual(expect.arrayContaining(['b', '10.0.0.2']))
    expect(st?.ca?.subject).toContain('MagFlock CA prod')
    const su = await run<{ value: string }>(['secrets', 'get', 'postgres.superuser.password', '--reveal', '--json'])
    expect(su.json?.ok && su.json.data.value).toBe(SU)
    const list = await run<{ secrets: Array<{ name: string }> }>(['secrets', 'list', '--json'])
    expect(list.json?.ok && list.json.data.secrets.map((s) => s.name).sort()).toEqual(['postgres.superuser.password', 'replication.replicator.password', 'tls.node.key'])
    // The same bundle again: nothing new, nothing refused.
    const again = await run<NodeJoinResult>(['node', 'join', '--bundle', bundleFile, '--code', code, '--listen', '10.0.0.2', '--import-only', '--json'])
    expect(again.json?.ok && again.json.data.bundle).toMatchObject({ imported: [] })
    expect(existsSync(path.join(project, '.magflock', 'cluster.json'))).toBe(false)
  }, 120_000)
})

describe('node invite (built CLI)', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const up = await f.run(['kernel', 'start', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
  }, 120_000)
  afterAll(async () => {
    await f?.run(['down', '--json'])
    await f?.destroy()
  }, 120_000)

  it('refuses an --out that exists before asking the kernel, and a kernel that is not a node; no file is written', async () => {
    const taken = path.join(f.projectDir, 'taken.join')
    writeFileSync(taken, 'keep me\n')
    expect(errorOf(await f.run(['node', 'invite', 'b', '--san', '10.0.0.2', '--out', taken, '--json']))).toEqual([4, 'E_NODE_INVITE_OUT_EXISTS'])
    expect(readFileSync(taken, 'utf8')).toBe('keep me\n')
    const out = path.join(f.projectDir, 'b.join')
    expect(errorOf(await f.run(['node', 'invite', 'b', '--san', '10.0.0.2', '--out', out, '--json']))).toEqual([5, 'E_NODE_INVITE_NOT_A_NODE'])
    expect(existsSync(out)).toBe(false)
    const badSan = await f.run(['node', 'invite', 'b', '--san', '10.0.0.2', '--out', out, '--valid-hours', '0', '--json'])
    expect(badSan.exitCode).toBe(2)
  }, 60_000)
})
