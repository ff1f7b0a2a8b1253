import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { certMatches, createCa, describeCert, issueCert } from '../../../src/tls/certs.js'
import { HBA_BEGIN, HBA_END, conninfoOf, replicationConnOptions, withRemoteHba } from '../../../src/tls/postgres.js'
import { tempDir } from '../../helpers/tmp.js'

const tmp = tempDir('mf-tls-')
afterAll(() => tmp.cleanup())

function opensslVerify(caPem: string, certPem: string, extra: string[] = []): string {
  const ca = path.join(tmp.dir, 'ca.pem')
  const crt = path.join(tmp.dir, 'crt.pem')
  writeFileSync(ca, caPem)
  writeFileSync(crt, certPem)
  return execFileSync('openssl', ['verify', '-CAfile', ca, ...extra, crt], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

describe('tls certificates (flock CA)', () => {
  it('issues a node certificate that openssl verifies against the flock CA, for its IP and DNS names', async () => {
    const ca = await createCa('default', 3650)
    const node = await issueCert({ ca, commonName: 'node-a', sans: ['node-a', 'localhost', '127.0.0.1', '127.0.0.2'], usage: 'server+client', days: 365 })
    expect(opensslVerify(ca.certPem, node.certPem, ['-purpose', 'sslserver', '-verify_ip', '127.0.0.2'])).toMatch(/: OK/)
    expect(opensslVerify(ca.certPem, node.certPem, ['-purpose', 'sslclient', '-verify_hostname', 'node-a'])).toMatch(/: OK/)
    const info = describeCert(node.certPem)
    expect(info.sans).toEqual(['node-a', 'localhost', '127.0.0.1', '127.0.0.2'])
    expect(info.daysLeft).toBeGreaterThanOrEqual(364)
    expect(info.isCa).toBe(false)
    expect(describeCert(ca.certPem).isCa).toBe(true)
    expect(certMatches(node.certPem, node.keyPem, ca.certPem)).toBe(true)
  })

  it('refuses what openssl refuses: an address not in the certificate, a foreign CA, a client cert used as a server', async () => {
    const ca = await createCa('default', 3650)
    const other = await createCa('other', 3650)
    const node = await issueCert({ ca, commonName: 'node-a', sans: ['127.0.0.2'], usage: 'server+client', days: 365 })
    const client = await issueCert({ ca, commonName: 'alice', sans: [], usage: 'client', days: 30 })
    expect(() => opensslVerify(ca.certPem, node.certPem, ['-verify_ip', '127.0.0.3'])).toThrow()
    expect(() => opensslVerify(other.certPem, node.certPem)).toThrow()
    expect(() => opensslVerify(ca.certPem, client.certPem, ['-purpose', 'sslserver'])).toThrow()
    expect(opensslVerify(ca.certPem, client.certPem, ['-purpose', 'sslclient'])).toMatch(/: OK/)
    expect(certMatches(node.certPem, node.keyPem, other.certPem)).toBe(false)
    expect(certMatches(node.certPem, client.keyPem, ca.certPem)).toBe(false)
  })
})

describe('tls/postgres (pg_hba block, replication options)', () => {
  const initdbHba = '# Written by MagFlock.\nlocal all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n'

  it('adds a hostssl + scram block only when Postgres listens beyond 127.0.0.1, and replaces it in place', () => {
    expect(withRemoteHba(initdbHba, [])).toBe(initdbHba)
    const once = withRemoteHba(initdbHba, ['127.0.0.2'])
    expect(once.startsWith(initdbHba)).toBe(true)
    expect(once).toContain('hostssl replication  magflock_replicator  0.0.0.0/0  scram-sha-256')
    expect(once).toMatch(/host {4}all {10}all {18}0\.0\.0\.0\/0 {2}reject/)
    expect(once).not.toMatch(/hostssl\s+replication\s+postgres/)
    expect(withRemoteHba(once, ['127.0.0.2'])).toBe(once)
    expect(once.split('\n').filter((l) => l === HBA_BEGIN || l === HBA_END)).toHaveLength(2)
    expect(withRemoteHba(once, [])).toBe(initdbHba)
  })

  it('reaches a non-local peer with verify-full against the flock CA, a local one as before', () => {
    const s = withCa()
    try {
      expect(replicationConnOptions({ host: '127.0.0.1', port: 5433 }, s.dir)).toEqual({ host: '127.0.0.1', port: '5433', user: 'magflock_replicator' })
      const remote = replicationConnOptions({ host: '10.0.0.2', port: 5433 }, s.dir)
      expect(remote).toEqual({ host: '10.0.0.2', port: '5433', user: 'magflock_replicator', sslmode: 'verify-full', sslrootcert: `${s.dir}/tls/postgres/ca.crt` })
      expect(conninfoOf(remote)).toBe(`host='10.0.0.2' port='5433' user='magflock_replicator' sslmode='verify-full' sslrootcert='${s.dir}/tls/postgres/ca.crt'`)
      // A node without MagFlock's certificates (the etcd agent) replicates as configured by its pg_hba.
      expect(replicationConnOptions({ host: '10.0.0.2', port: 5433 }, '/nonexistent')).toEqual({ host: '10.0.0.2', port: '5433', user: 'magflock_replicator' })
    } finally {
      s.cleanup()
    }
  })
})

/** A state dir holding the flock CA copy Postgres' clients verify against. */
function withCa(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-tlsca-'))
  mkdirSync(path.join(dir, 'tls/postgres'), { recursive: true })
  writeFileSync(path.join(dir, 'tls/postgres/ca.crt'), '-----BEGIN CERTIFICATE-----\n')
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

describe('replication over TLS to a non-local peer', () => {
  it('primary_conninfo and the tools\' environment ask for verify-full only when the primary is not on 127.0.0.1', async () => {
    const { primaryConninfo } = await import('../../../src/replication/pg.js')
    const { replicationSslEnv } = await import('../../../src/tls/postgres.js')
    const s = withCa()
    try {
      const standby = { name: 'r1', host: '127.0.0.1', port: 5434, instanceDir: `${s.dir}/instances/r1`, dataDir: `${s.dir}/instances/r1/data`, logFile: `${s.dir}/instances/r1/postgres.log` }
      const env = { superuser: 'postgres', replicator: { user: 'magflock_replicator', password: 'x' } }
      expect(primaryConninfo(env, { host: '127.0.0.1', port: 5433 }, standby)).not.toContain('sslmode')
      expect(primaryConninfo(env, { host: '10.0.0.1', port: 5433 }, standby)).toContain(`sslmode=verify-full sslrootcert=${s.dir}/tls/postgres/ca.crt`)
      expect(replicationSslEnv('127.0.0.1', standby.instanceDir)).toEqual({})
      expect(replicationSslEnv('10.0.0.1', standby.instanceDir)).toEqual({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: `${s.dir}/tls/postgres/ca.crt` })
    } finally {
      s.cleanup()
    }
  })
})
