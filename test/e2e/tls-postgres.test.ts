import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { freePort } from '../../src/platform/ports.js'
import { lookupUser } from '../../src/platform/os-user.js'
import type { TlsStatus } from '../../src/tls/material.js'
import type { TlsRotateResult } from '../../src/commands/tls/rotate.js'

const PSQL = '/usr/lib/postgresql/15/bin/psql'
/** A second loopback address stands for the network: not 127.0.0.1, so the managed hostssl rules apply. */
const NET = '127.0.0.2'

/**
 * The flock CA and Postgres on a configured address with TLS, end to end: the built CLI,
 * a real kernel and Postgres, real psql over hostssl, real openssl against the served cert.
 */
describe('tls init/status/rotate and Postgres on postgres.listen with TLS', () => {
  let f: Flock
  let port: number
  let password: string
  const caFile = () => path.join(f.stateDir, 'tls', 'ca.crt')
  /** Async (not spawnSync): the relay below runs in this process's event loop. */
  const psql = (conn: string, sql: string) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(PSQL, ['-XAtq', '-d', conn, '-c', sql], { env: { PATH: process.env.PATH ?? '', PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' } })
      let stdout = ''
      let stderr = ''
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      p.on('close', (status) => resolve({ status, stdout, stderr }))
    })
  /** The certificate Postgres serves on NET, fetched and verified by openssl (STARTTLS postgres). */
  const servedSerial = () => {
    const out = execFileSync('openssl', ['s_client', '-starttls', 'postgres', '-connect', `${NET}:${port}`, '-CAfile', caFile(), '-verify_return_error', '-verify_ip', NET], {
      input: '',
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 20_000,
    })
    expect(out).toMatch(/Verify return code: 0 \(ok\)/)
    const pem = out.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0] ?? ''
    return execFileSync('openssl', ['x509', '-noout', '-serial'], { input: pem, encoding: 'utf8' }).trim().replace(/^serial=/, '')
  }

  let relay: net.Server
  let relayPort: number

  beforeAll(async () => {
    // Linux gives a connection to 127.0.0.2 the source address 127.0.0.1, which the loopback
    // pg_hba rules match. This relay connects from 127.0.0.3 instead, so Postgres sees a
    // client that is not on 127.0.0.1: a "remote" client, on one host.
    relay = net.createServer((c) => {
      const up = net.connect({ host: NET, port, localAddress: '127.0.0.3' })
      c.pipe(up).pipe(c)
      c.on('error', () => up.destroy())
      up.on('error', () => c.destroy())
    })
    relayPort = await new Promise<number>((res) => relay.listen(0, '127.0.0.1', () => res((relay.address() as net.AddressInfo).port)))
    port = await freePort()
    f = await createFlock({
      yaml: `postgres:\n  port: ${port}\n  listen: ["127.0.0.1", "${NET}"]\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\ntls:\n  nodeName: node-a\nbackup:\n  walArchiving: false\n`,
    })
  })
  afterAll(async () => {
    relay?.close()
    await f.destroy()
  })

  it('refuses to listen beyond 127.0.0.1 without certificates (E_TLS_REQUIRED) and starts nothing', async () => {
    const r = await f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(5)
    expect(r.json?.ok === false && r.json.error.code).toBe('E_TLS_REQUIRED')
    expect(existsSync(path.join(f.stateDir, 'topology.json'))).toBe(false)
    expect(existsSync(f.layout.instancesDir)).toBe(false)
  })

  it('tls status before init says there are none', async () => {
    const r = await f.run<TlsStatus>(['tls', 'status', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect(r.json?.ok && r.json.data).toMatchObject({ source: 'none', node: 'node-a', ca: null, cert: null })
  })

  it('tls init creates a CA and a node cert openssl verifies; keys only in the vault; a second init is refused', async () => {
    const r = await f.run<TlsStatus>(['tls', 'init', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    if (!r.json?.ok) throw new Error(r.stdout)
    expect(r.json.data.source).toBe('flock-ca')
    expect(r.json.data.cert?.sans).toEqual(expect.arrayContaining(['node-a', 'localhost', '127.0.0.1', NET]))
    expect(r.json.data.cert?.daysLeft).toBeGreaterThanOrEqual(364)
    expect(r.stdout).not.toContain('PRIVATE KEY')
    const v = execFileSync('openssl', ['verify', '-CAfile', caFile(), '-verify_ip', NET, path.join(f.stateDir, 'tls', 'node.crt')], { encoding: 'utf8' })
    expect(v).toMatch(/: OK/)
    const names = await f.run<{ name: string }[]>(['secrets', 'list', '--json'])
    expect(JSON.stringify(names.json)).toContain('tls.node.key')
    expect(JSON.stringify(names.json)).toContain('tls.ca.key')
    for (const file of ['ca.crt', 'node.crt']) expect(readFileSync(path.join(f.stateDir, 'tls', file), 'utf8')).not.toContain('PRIVATE KEY')
    const again = await f.run(['tls', 'init', '--json'])
    expect(again.exitCode).toBe(4)
    expect(again.json?.ok === false && again.json.error.code).toBe('E_TLS_ALREADY_INITIALIZED')
  })

  it('starts Postgres with ssl on the configured address; key files private to the Postgres OS user', async () => {
    const r = await f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    password = await f.superuserPassword()
    const pgUser = lookupUser('postgres')
    const dir = path.join(f.stateDir, 'tls', 'postgres')
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(dir).uid).toBe(pgUser.uid)
    expect(statSync(path.join(dir, 'server.key')).mode & 0o777).toBe(0o600)
    expect(statSync(path.join(dir, 'server.key')).uid).toBe(pgUser.uid)
  })

  it('psql from a remote address over hostssl with verify-full and SCRAM works; plaintext from it is rejected; loopback is unchanged', async () => {
    const direct = await psql(`host=${NET} port=${port} user=postgres dbname=postgres sslmode=verify-full sslrootcert=${caFile()}`, 'select ssl, version from pg_stat_ssl where pid = pg_backend_pid()')
    expect(direct.status, direct.stderr).toBe(0)
    expect(direct.stdout.trim()).toMatch(/^t\|TLSv1\.[23]$/)
    const remote = `hostaddr=127.0.0.1 port=${relayPort} user=postgres dbname=postgres`
    const ok = await psql(`${remote} host=node-a sslmode=verify-full sslrootcert=${caFile()}`, 'select s.ssl, a.client_addr from pg_stat_ssl s join pg_stat_activity a using (pid) where pid = pg_backend_pid()')
    expect(ok.status, ok.stderr).toBe(0)
    expect(ok.stdout.trim()).toBe('t|127.0.0.3')
    const plain = await psql(`${remote} host=node-a sslmode=disable`, 'select 1')
    expect(plain.status).not.toBe(0)
    expect(plain.stderr).toMatch(/pg_hba\.conf rejects connection/)
    const wrongName = await psql(`${remote} host=not-node-a sslmode=verify-full sslrootcert=${caFile()}`, 'select 1')
    expect(wrongName.status).not.toBe(0)
    expect(wrongName.stderr).toMatch(/does not match host name|server certificate/)
    const local = await psql(`host=127.0.0.1 port=${port} user=postgres dbname=postgres sslmode=disable`, 'select 1')
    expect(local.status, local.stderr).toBe(0)
  })

  it('tls rotate issues a new node cert that the running Postgres serves without a restart', async () => {
    const pid = await f.postmasterPid()
    const before = servedSerial()
    const r = await f.run<TlsRotateResult>(['tls', 'rotate', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    if (!r.json?.ok) throw new Error(r.stdout)
    expect(r.json.data.reloaded.length).toBeGreaterThan(0)
    const fresh = r.json.data.cert?.serial
    expect(fresh).toBeDefined()
    // SIGHUP is asynchronous: poll until the postmaster serves the new certificate.
    const deadline = Date.now() + 20_000
    let served = servedSerial()
    while (served !== fresh && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200))
      served = servedSerial()
    }
    expect(served).toBe(fresh)
    expect(served).not.toBe(before)
    expect(await f.postmasterPid()).toBe(pid)
    const st = await f.run<TlsStatus>(['tls', 'status', '--json'])
    expect(st.json?.ok && st.json.data.cert?.serial).toBe(fresh)
  })

  it('doctor shows the expiry of the CA and the node certificate', async () => {
    const r = await f.run<{ checks: Array<{ name: string; status: string; detail: string }> }>(['doctor', '--json'])
    const text = r.stdout
    expect(text).toContain('"tls ca"')
    expect(text).toMatch(/"tls node cert"[\s\S]*?"status": "ok"[\s\S]*?CN=node-a[^"]*expires \d{4}-\d{2}-\d{2} \(36\d days\)/)
  })
})
