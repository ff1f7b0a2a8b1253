import https from 'node:https'
import tls from 'node:tls'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { cli } from '../helpers/cli.js'
import { tempDir } from '../helpers/tmp.js'
import { freePort } from '../../src/platform/ports.js'
import { createCa, issueCert } from '../../src/tls/certs.js'
import type { TokenCreateResult } from '../../src/commands/token/create.js'

/** A second loopback address stands for the node's network address. */
const NET = '127.0.0.2'

/**
 * The control API over TCP with mutual TLS (api.listen), through the real TLS socket of a
 * real kernel: the client certificate opens the door, the token's role decides.
 */
describe('control API over mutual TLS (api.listen, --api, --tls-dir)', () => {
  let f: Flock
  let apiPort: number
  let viewerToken: string
  const elsewhere = tempDir('mf-remote-')
  const clientDir = path.join(elsewhere.dir, 'alice')
  const strangerDir = path.join(elsewhere.dir, 'stranger')
  /** The CLI run from a directory with no flock: everything goes to the remote kernel. */
  const remote = (args: string[], env: Record<string, string> = {}) =>
    cli(args, { cwd: elsewhere.dir, env: { MAGFLOCK_STATE_DIR: path.join(elsewhere.dir, 'no-flock'), MAGFLOCK_PREFS_DIR: path.join(elsewhere.dir, '.prefs'), ...env } })
  /** A raw HTTPS request with whatever client certificate (or none) the test chooses. */
  const raw = (o: { cert?: string; key?: string; ca: string; token?: string }) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { host: NET, port: apiPort, path: '/v1/status', method: 'GET', ca: o.ca, agent: false, checkServerIdentity: (_h, cert) => tls.checkServerIdentity(NET, cert), cert: o.cert, key: o.key, headers: { host: 'magflock', ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) }, timeout: 15_000 },
        (res) => {
          let body = ''
          res.on('data', (d: Buffer) => (body += d.toString()))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.end()
    })

  beforeAll(async () => {
    apiPort = await freePort()
    const pgPort = await freePort()
    f = await createFlock({
      yaml: `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\napi:\n  listen: "${NET}:${apiPort}"\nbackup:\n  walArchiving: false\n`,
    })
    const refused = await f.run(['kernel', 'start', '--json'])
    expect(refused.json?.ok === false && refused.json.error.code).toBe('E_TLS_REQUIRED')
    expect((await f.run(['tls', 'init', '--json'])).exitCode).toBe(0)
    const r = await f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const issued = await f.run(['tls', 'client', 'alice', '--out', clientDir, '--json'])
    expect(issued.exitCode, issued.stdout + issued.stderr).toBe(0)
    const t = await f.run<TokenCreateResult>(['token', 'create', '--name', 'remote-viewer', '--role', 'viewer', '--json'])
    if (!t.json?.ok) throw new Error(t.stdout + t.stderr)
    viewerToken = t.json.data.token
    // A certificate from another CA, with the flock's CA file beside it.
    const other = await createCa('other', 30)
    const c = await issueCert({ ca: other, commonName: 'mallory', sans: [], usage: 'client', days: 30 })
    mkdirSync(strangerDir, { recursive: true })
    writeFileSync(path.join(strangerDir, 'ca.crt'), readFileSync(path.join(clientDir, 'ca.crt')))
    writeFileSync(path.join(strangerDir, 'client.crt'), c.certPem)
    writeFileSync(path.join(strangerDir, 'client.key'), c.keyPem, { mode: 0o600 })
  })
  afterAll(async () => {
    await f.destroy()
    elsewhere.cleanup()
  })

  it('right client certificate + viewer token: status works from another directory', async () => {
    const r = await remote(['status', '--json', '--api', `${NET}:${apiPort}`, '--tls-dir', clientDir, '--token', viewerToken])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect(r.json?.ok).toBe(true)
    expect(JSON.stringify(r.json)).toContain('"role":"primary"')
  })

  it('the same through MAGFLOCK_API / MAGFLOCK_TLS_DIR / MAGFLOCK_TOKEN', async () => {
    const r = await remote(['status', '--json'], { MAGFLOCK_API: `${NET}:${apiPort}`, MAGFLOCK_TLS_DIR: clientDir, MAGFLOCK_TOKEN: viewerToken })
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
  })

  it('viewer token over mutual TLS: a mutation is denied (E_FORBIDDEN) and nothing is created', async () => {
    const r = await remote(['token', 'create', '--name', 'sneaky', '--role', 'admin', '--json', '--api', `${NET}:${apiPort}`, '--tls-dir', clientDir, '--token', viewerToken])
    expect(r.json?.ok === false && r.json.error.code).toBe('E_FORBIDDEN')
    expect(r.exitCode).toBe(9)
    const list = await f.run(['token', 'list', '--json'])
    expect(JSON.stringify(list.json)).not.toContain('sneaky')
  })

  it('no token: refused before anything is sent (E_REMOTE_TOKEN_MISSING); a wrong token: E_UNAUTHENTICATED', async () => {
    const none = await remote(['status', '--json', '--api', `${NET}:${apiPort}`, '--tls-dir', clientDir])
    expect(none.json?.ok === false && none.json.error.code).toBe('E_REMOTE_TOKEN_MISSING')
    const wrong = await remote(['status', '--json', '--api', `${NET}:${apiPort}`, '--tls-dir', clientDir, '--token', 'mf_not_a_token'])
    expect(wrong.json?.ok === false && wrong.json.error.code).toBe('E_UNAUTHENTICATED')
  })

  it('a client certificate from another CA is refused in the handshake (E_REMOTE_UNREACHABLE)', async () => {
    const r = await remote(['status', '--json', '--api', `${NET}:${apiPort}`, '--tls-dir', strangerDir, '--token', viewerToken])
    expect(r.json?.ok === false && r.json.error.code).toBe('E_REMOTE_UNREACHABLE')
    expect(r.exitCode).toBe(7)
    const ca = readFileSync(path.join(clientDir, 'ca.crt'), 'utf8')
    await expect(raw({ ca, cert: readFileSync(path.join(strangerDir, 'client.crt'), 'utf8'), key: readFileSync(path.join(strangerDir, 'client.key'), 'utf8'), token: viewerToken })).rejects.toThrow()
  })

  it('no client certificate at all is refused in the handshake, even with a valid token', async () => {
    const ca = readFileSync(path.join(clientDir, 'ca.crt'), 'utf8')
    await expect(raw({ ca, token: viewerToken })).rejects.toThrow()
    // The control: the same raw request with alice's certificate is answered.
    const ok = await raw({ ca, cert: readFileSync(path.join(clientDir, 'client.crt'), 'utf8'), key: readFileSync(path.join(clientDir, 'client.key'), 'utf8'), token: viewerToken })
    expect(ok.status).toBe(200)
  })

  it('a client that does not trust the node (wrong CA file) refuses the node: E_REMOTE_UNREACHABLE', async () => {
    const other = path.join(elsewhere.dir, 'wrong-ca')
    mkdirSync(other, { recursive: true })
    for (const file of ['client.crt', 'client.key']) writeFileSync(path.join(other, file), readFileSync(path.join(clientDir, file)))
    writeFileSync(path.join(other, 'ca.crt'), (await createCa('other', 30)).certPem)
    const r = await remote(['status', '--json', '--api', `${NET}:${apiPort}`, '--tls-dir', other, '--token', viewerToken])
    expect(r.json?.ok === false && r.json.error.code).toBe('E_REMOTE_UNREACHABLE')
    expect(r.json?.ok === false && r.json.error.message).toMatch(/certificate/i)
  })
})
