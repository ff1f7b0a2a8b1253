import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdFlockStore } from '../../../src/cluster/etcd-store.js'
import { NodeHa } from '../../../src/cluster/node-ha.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { fence, readFence } from '../../../src/replication/fence.js'
import { pgCtlLifecycle, type PgNode, type ReplicationEnv } from '../../../src/replication/pg.js'
import { startTestEtcd, type TestEtcd } from '../../helpers/etcd.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'

/** NodeHa's actions against a real etcd and a real Postgres on loopback (one node). */
let etcd: TestEtcd
let pgi: TestPostgres
let store: EtcdFlockStore

beforeAll(async () => {
  etcd = await startTestEtcd()
  pgi = await startTestPostgres({ replication: true })
  store = new EtcdFlockStore({ endpoints: [etcd.endpoint], flock: 'nodeha', callTimeoutMs: 1500 })
}, 120_000)
afterAll(async () => {
  await store?.close()
  await pgi?.stop()
  await etcd?.stop()
})

describe('NodeHa', () => {
  it('a last leader whose resume cannot start Postgres is fenced again, and the next tick serves', async () => {
    const bins = findPgBinaries()
    const runAs = postgresRunAs()
    const env: ReplicationEnv = { bins, runAs, superuser: pgi.user, password: pgi.password, lifecycle: pgCtlLifecycle(bins, runAs, 30) }
    const local: PgNode = { name: 'n1_1', host: '127.0.0.1', port: pgi.port, instanceDir: pgi.dir, dataDir: pgi.dataDir, logFile: path.join(pgi.dir, 'resume.log') }
    // The node demoted itself (quorum lost) and was the last leader; the key is free again.
    await store.updateStatus((s) => ({ ...s, lastLeader: 'n1' }))
    await fence(env, local, 'test: lease not renewed')
    // Something else holds the port now: Postgres cannot start.
    const squatter = net.createServer()
    await new Promise<void>((r) => squatter.listen(pgi.port, '127.0.0.1', r))
    const ha = new NodeHa({ node: 'n1', store, leadership: store.leadership('n1'), env, local, mode: 'async', ttlMs: 10_000 })
    try {
      await expect(ha.tick()).rejects.toThrow()
      expect(ha.lastDecision()?.decision.action).toBe('resume')
      // Not left neither fenced nor running: fenced again, so the loop tries again.
      expect(await readFence(local.instanceDir)).toBeDefined()
      await new Promise<void>((r) => squatter.close(() => r()))
      expect((await ha.tick()).action).toBe('resume')
      expect(await readFence(local.instanceDir)).toBeUndefined()
      const r = await pgi.query<{ rec: boolean }>('select pg_is_in_recovery() as rec')
      expect(r.rows[0]?.rec).toBe(false)
    } finally {
      squatter.close()
      await ha.stop({ release: true })
    }
  })
})
