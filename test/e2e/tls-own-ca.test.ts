import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { freePort } from '../../src/platform/ports.js'
import { createCa, issueCert, type Pem } from '../../src/tls/certs.js'
import type { TlsStatus } from '../../src/tls/material.js'

const PSQL = '/usr/lib/postgresql/15/bin/psql'
const NET = '127.0.0.2'

/**
 * The operator's own CA and certificate (tls.caFile, certFile, keyFile), and the refusals
 * around them: incomplete or mismatched files, an API port in use, commands that would issue.
 */
describe('tls with the operator\'s own CA', () => {
  let f: Flock
  let pgPort: number
  let apiPort: number
  let ca: Pem
  const file = (n: string) => path.join(f.projectDir, 'own', n)
  const writeYaml = (tls: string) =>
    writeFileSync(
      path.join(f.projectDir, 'magflock.yaml'),
      `postgres:\n  port: ${pgPort}\n  listen: ["127.0.0.1", "${NET}"]\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\napi:\n  listen: "${NET}:${apiPort}"\nbackup:\n  walArchiving: false\n${tls}`,
    )
  const ownTls = (cert: string, key: string) => `tls:\n  caFile: own/ca.crt\n  certFile: own/${cert}\n  keyFile: own/${key}\n`

  beforeAll(async () => {
    pgPort = await freePort()
    apiPort = await freePort()
    f = await createFlock()
    ca = await createCa('ops', 365)
    const node = await issueCert({ ca, commonName: 'db1', sans: ['db1', '127.0.0.1', NET], usage: 'server+client', days: 90 })
    const stranger = await issueCert({ ca: await createCa('x', 30), commonName: 'db1', sans: [NET], usage: 'server', days: 30 })
    mkdirSync(path.join(f.projectDir, 'own'), { recursive: true })
    writeFileSync(file('ca.crt'), ca.certPem)
    writeFileSync(file('node.crt'), node.certPem)
    writeFileSync(file('node.key'), node.keyPem, { mode: 0o600 })
    writeFileSync(file('stranger.crt'), stranger.certPem)
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('refuses an incomplete set (E_TLS_FILES_INCOMPLETE) and a certificate of another CA (E_TLS_CERT_MISMATCH), starting nothing', async () => {
    writeYaml('tls:\n  caFile: own/ca.crt\n')
    const a = await f.run(['kernel', 'start', '--json'])
    expect(a.json?.ok === false && a.json.error.code).toBe('E_TLS_FILES_INCOMPLETE')
    writeYaml(ownTls('stranger.crt', 'node.key'))
    const b = await f.run(['kernel', 'start', '--json'])
    expect(b.json?.ok === false && b.json.error.code).toBe('E_TLS_CERT_MISMATCH')
    expect(existsSync(path.join(f.stateDir, 'topology.json'))).toBe(false)
  })

  it('refuses an api.listen port that is taken (E_TLS_API_LISTEN_FAILED) and leaves nothing running', async () => {
    writeYaml(ownTls('node.crt', 'node.key'))
    const blocker = net.createServer()
    await new Promise<void>((r) => blocker.listen(apiPort, NET, () => r()))
    try {
      const r = await f.run(['kernel', 'start', '--json'])
      expect(r.json?.ok === false && r.json.error.code, r.stdout).toBe('E_TLS_API_LISTEN_FAILED')
      expect(await f.postmasterPid()).toBeUndefined()
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()))
    }
  })

  it('serves Postgres with the operator\'s certificate; MagFlock does not issue or rotate', async () => {
    const r = await f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const password = await f.superuserPassword()
    const out = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(PSQL, ['-XAtq', '-d', `host=${NET} port=${pgPort} user=postgres dbname=postgres sslmode=verify-full sslrootcert=${file('ca.crt')}`, '-c', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'], {
        env: { PATH: process.env.PATH ?? '', PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' },
      })
      let stdout = ''
      let stderr = ''
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      p.on('close', (status) => resolve({ status, stdout, stderr }))
    })
    expect(out.status, out.stderr).toBe(0)
    expect(out.stdout.trim()).toBe('t')
    const st = await f.run<TlsStatus>(['tls', 'status', '--json'])
    expect(st.json?.ok && st.json.data).toMatchObject({ source: 'operator', cert: { subject: expect.stringContaining('CN=db1') } })
    for (const args of [['tls', 'init', '--json'], ['tls', 'rotate', '--json'], ['tls', 'client', 'bob', '--out', path.join(f.projectDir, 'bob'), '--json']]) {
      const x = await f.run(args)
      expect(x.json?.ok === false && x.json.error.code, args.join(' ')).toBe('E_TLS_OPERATOR_MANAGED')
      expect(x.exitCode).toBe(5)
    }
    const bad = await f.run(['tls', 'client', 'Bad Name!', '--out', path.join(f.projectDir, 'bad'), '--json'])
    expect(bad.json?.ok === false && bad.json.error.code).toBe('E_TLS_BAD_NAME')
    expect(existsSync(path.join(f.projectDir, 'bad'))).toBe(false)
  })
})
