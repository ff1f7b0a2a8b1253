import { mkdirSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdFlockStore } from '../../../src/cluster/etcd-store.js'
import { NodeHa } from '../../../src/cluster/node-ha.js'
import { postmasterRunning, readPostmasterPid } from '../../../src/postgres/pidfile.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { freePort } from '../../../src/platform/ports.js'
import { createReplica } from '../../../src/replication/actions.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { fence, readFence } from '../../../src/replication/fence.js'
import { clientConfig, pgCtlLifecycle, withClient, type PgNode, type ReplicationEnv } from '../../../src/replication/pg.js'
import { startTestEtcd, type TestEtcd } from '../../helpers/etcd.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'
import { waitFor } from '../../helpers/wait.js'

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

  it('a replica is promoted only after the store names its node the last leader (never writable while the store still names the old one)', async () => {
    const bins = findPgBinaries()
    const runAs = postgresRunAs()
    const env: ReplicationEnv = { bins, runAs, superuser: pgi.user, password: pgi.password, lifecycle: pgCtlLifecycle(bins, runAs, 30) }
    const primary: PgNode = { name: 'n1_1', host: '127.0.0.1', port: pgi.port, instanceDir: pgi.dir, dataDir: pgi.dataDir, logFile: path.join(pgi.dir, 'resume.log') }
    const tmp = tempDir('mf-nodeha-')
    const dir = path.join(tmp.dir, 'n2')
    mkdirSync(dir)
    const local: PgNode = { name: 'n2_1', host: '127.0.0.1', port: await freePort(), instanceDir: dir, dataDir: path.join(dir, 'data'), logFile: path.join(dir, 'postgres.log') }
    await createReplica(env, primary, local, { noSync: true })
    const st = new EtcdFlockStore({ endpoints: [etcd.endpoint], flock: 'nodeha-promote', callTimeoutMs: 1500 })
    await st.updateStatus((s) => ({ ...s, lastLeader: 'n1' }))
    // The same store, except that status updates fail (etcd electing a leader, say).
    const broken = new Proxy(st, {
      get(t, k) {
        if (k === 'updateStatus') return async () => Promise.reject(new Error('etcd unavailable'))
        const v = Reflect.get(t, k, t) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v
      },
    })
    const inRecovery = () => withClient(clientConfig(env, local), async (c) => (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r)
    const ha = new NodeHa({ node: 'n2', store: broken, leadership: st.leadership('n2'), env, local, mode: 'async', ttlMs: 10_000 })
    try {
      await expect(ha.tick()).rejects.toThrow(/etcd unavailable/)
      expect(ha.lastDecision()?.decision.action).toBe('promote')
      expect(await inRecovery()).toBe(true)
      // The key went back, so another candidate (or this one, next tick) may try.
      expect(await st.leadership('x').current()).toBeUndefined()
      const ok = new NodeHa({ node: 'n2', store: st, leadership: st.leadership('n2'), env, local, mode: 'async', ttlMs: 10_000 })
      expect((await ok.tick()).action).toBe('promote')
      expect(await inRecovery()).toBe(false)
      expect((await st.status()).lastLeader).toBe('n2')
      await ok.stop({ release: true })
    } finally {
      await ha.stop({ release: true })
      await env.lifecycle.stop(local, 'immediate').catch(() => undefined)
      await st.close()
      tmp.cleanup()
    }
  })

  it('a primary whose postmaster is killed while its node holds the key comes back: fenced, then resumed (nothing else starts it on a node)', async () => {
    const { env, local, st } = onTestInstance('n1_1', 'nodeha-restart', 'resume.log')
    const ha = new NodeHa({ node: 'n1', store: st, leadership: st.leadership('n1'), env, local, mode: 'async', ttlMs: 10_000 })
    try {
      expect((await ha.tick()).action).toBe('acquire')
      expect((await ha.tick()).action).toBe('keep')
      const pid = (await readPostmasterPid(local.dataDir))?.pid
      expect(pid).toBeGreaterThan(0)
      process.kill(pid as number, 'SIGKILL')
      await waitFor('the postmaster gone', async () => !(await postmasterRunning(local.dataDir)), 30_000, 50)
      // Down, with the key still held: a former primary is fenced first…
      const d = await waitFor('a restart decision', async () => {
        const x = await ha.tick()
        return x.action === 'restart' ? x : undefined
      }, 30_000, 100)
      expect(d.sentence).toContain('no postmaster')
      expect(await readFence(local.instanceDir)).toBeDefined()
      // …and resumed by the next tick, since this node still holds the key.
      expect((await ha.tick()).action).toBe('resume')
      expect(await readFence(local.instanceDir)).toBeUndefined()
      expect(await inRecoveryOf(env, local)).toBe(false)
      expect((await ha.tick()).action).toBe('keep')
    } finally {
      await ha.stop({ release: true })
      await st.close()
    }
  })

  it('a tick waits for a dead-man fence in flight and never lifts a fence that is still killing', async () => {
    const { env, local, st } = onTestInstance('n1_1', 'nodeha-race', 'resume.log')
    const ha = new NodeHa({ node: 'n1', store: st, leadership: st.leadership('n1'), env, local, mode: 'async', ttlMs: 10_000 })
    try {
      expect((await ha.tick()).action).toBe('acquire')
      // The dead-man timer firing (as when renewals fail under load) while the loop ticks.
      const fencing = (ha as unknown as { selfFence(reason: string): Promise<void> }).selfFence('test: lease not renewed')
      const d = await ha.tick()
      await fencing
      // The tick looked only after the fence was complete: fenced, key still ours → resume.
      expect(d.action).toBe('resume')
      expect(await readFence(local.instanceDir)).toBeUndefined()
      expect(await inRecoveryOf(env, local)).toBe(false)
      expect(await postmasterRunning(local.dataDir)).toBe(true)
    } finally {
      await ha.stop({ release: true })
      await st.close()
    }
  })

  it('renewMs spaces successful lease renewals (a failed one is retried at the next tick); one at or past TTL − margin is refused', async () => {
    const { env, local, st } = onTestInstance('r1_1', 'nodeha-renew', 'renew.log')
    const lead = st.leadership('r1')
    expect(() => new NodeHa({ node: 'r1', store: st, leadership: lead, env, local, mode: 'async', ttlMs: 3000, marginMs: 1000, renewMs: 2000 })).toThrow(/more often/)
    expect(await lead.acquire(10_000)).toBe(true)
    // The first renewal fails (no member answered): the next tick tries again at once.
    const calls: { at: number; ok: boolean }[] = []
    const counted = {
      holderId: lead.holderId,
      acquire: (ttl: number) => lead.acquire(ttl),
      renew: async () => {
        const ok = calls.length === 0 ? false : await lead.renew()
        calls.push({ at: Date.now(), ok })
        return ok
      },
      release: () => lead.release(),
      watch: (cb: (h: string | undefined) => void) => lead.watch(cb),
      current: () => lead.current(),
      validUntil: () => lead.validUntil(),
    }
    const ha = new NodeHa({ node: 'r1', store: st, leadership: counted, env, local, mode: 'async', ttlMs: 10_000, loopMs: 100, renewMs: 1000 })
    ha.start()
    try {
      const deadline = Date.now() + 60_000
      while (calls.filter((c) => c.ok).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      const ok = calls.filter((c) => c.ok)
      expect(ok.length).toBeGreaterThanOrEqual(3)
      // Retried after the failure; then one success per renewMs at most.
      expect(calls[1]?.ok).toBe(true)
      expect(ok[2]!.at - ok[0]!.at).toBeGreaterThanOrEqual(1800)
    } finally {
      await ha.stop({ release: true })
      await st.close()
    }
  })
})

const inRecoveryOf = (env: ReplicationEnv, local: PgNode) => withClient(clientConfig(env, local), async (c) => (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r)

/** The shared test instance as a node's local instance, and a store of its own flock. */
function onTestInstance(name: string, flock: string, log: string): { env: ReplicationEnv; local: PgNode; st: EtcdFlockStore } {
  const bins = findPgBinaries()
  const runAs = postgresRunAs()
  return {
    env: { bins, runAs, superuser: pgi.user, password: pgi.password, lifecycle: pgCtlLifecycle(bins, runAs, 30) },
    local: { name, host: '127.0.0.1', port: pgi.port, instanceDir: pgi.dir, dataDir: pgi.dataDir, logFile: path.join(pgi.dir, log) },
    st: new EtcdFlockStore({ endpoints: [etcd.endpoint], flock, callTimeoutMs: 1500 }),
  }
}
