import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdFlockStore, EtcdLeadership, parseEndpoints } from '../../../src/cluster/etcd-store.js'
import { FileFlockStore } from '../../../src/cluster/store.js'
import { nodeList } from '../../../src/cluster/node-list.js'
import { checkLeaseSettings } from '../../../src/cluster/node-boot.js'
import { startTestEtcd, type TestEtcd } from '../../helpers/etcd.js'
import { tempDir } from '../../helpers/tmp.js'
import { waitFor } from '../../helpers/wait.js'

let etcd: TestEtcd
const stores: EtcdFlockStore[] = []
function store(flock = 'f1'): EtcdFlockStore {
  const s = new EtcdFlockStore({ endpoints: [etcd.endpoint], flock, callTimeoutMs: 1500 })
  stores.push(s)
  return s
}

beforeAll(async () => {
  etcd = await startTestEtcd()
}, 60_000)
afterAll(async () => {
  for (const s of stores) await s.close()
  await etcd?.stop()
})

describe('EtcdFlockStore', () => {
  it('keeps topology, desired ops, config overrides and history under /magflock/<flock>/', async () => {
    const a = store()
    const b = store()
    await a.updateTopology((t) => ({ ...t, nodes: { ...t.nodes, a: { name: 'a', address: '10.0.0.1', joinedAt: 'now' } } }))
    await b.updateTopology((t) => ({ ...t, nodes: { ...t.nodes, b: { name: 'b', address: '10.0.0.2', joinedAt: 'now' } } }))
    expect(Object.keys((await a.topology()).nodes).sort()).toEqual(['a', 'b'])
    await a.updateDesired('b', (d) => ({ ...d, ops: [...d.ops, { op: 'replica-add', id: 'x1', name: 'b_1', sync: true, requestedAt: 'now' }] }))
    expect((await b.desired('b')).ops.map((o) => o.id)).toEqual(['x1'])
    expect((await b.desired('c')).ops).toEqual([])
    await a.updateConfigOverrides((c) => ({ ...c, 'replication.failover.graceSeconds': 3 }))
    expect(await b.configOverrides()).toEqual({ 'replication.failover.graceSeconds': 3 })
    await a.recordFailover({ from: 'a_1', to: 'b_1', reason: 'test', at: 'now', automatic: true })
    expect((await b.history()).map((h) => h.to)).toEqual(['b_1'])
    const raw = await a.client.get('/magflock/f1/topology').string()
    expect(JSON.parse(raw ?? '{}').nodes.a.address).toBe('10.0.0.1')
    // Another flock's keys are its own.
    expect((await store('f2').topology()).nodes).toEqual({})
  })

  it('loses no update when two nodes update the same document concurrently (compare-and-set)', async () => {
    const a = store('cas')
    const b = store('cas')
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).recordFailover({ from: 'x', to: `n${i}`, reason: 'r', at: 'now', automatic: false }),
      ),
    )
    expect((await a.history()).map((h) => h.to).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort())
  })

  it('refuses a document that is not MagFlock state with E_FLOCK_STORE_CORRUPT and leaves it alone', async () => {
    const a = store('bad')
    await a.client.put('/magflock/bad/topology').value('{"nodes": 7}')
    await expect(a.topology()).rejects.toMatchObject({ code: 'E_FLOCK_STORE_CORRUPT' })
    await expect(a.updateTopology((t) => t)).rejects.toMatchObject({ code: 'E_FLOCK_STORE_CORRUPT' })
    expect(await a.client.get('/magflock/bad/topology').string()).toBe('{"nodes": 7}')
  })

  it('tells a watcher about a change made by another node', async () => {
    const a = store('w')
    const b = store('w')
    let seen = 0
    const stop = b.watch('desired/b', () => seen++)
    await waitFor('watch established', async () => {
      await a.updateDesired('b', (d) => ({ ...d, ops: [] }))
      return seen > 0
    }, 20_000, 200)
    stop()
  })

  it('rejects bad endpoint lists with E_ETCD_ENDPOINT_INVALID', () => {
    for (const bad of ['', 'etcd1:2379', 'ftp://x:1', 'http://x', 'http://x:2379/v2'])
      expect(() => parseEndpoints(bad), bad).toThrow(expect.objectContaining({ code: 'E_ETCD_ENDPOINT_INVALID' }))
    expect(parseEndpoints('http://10.0.0.1:2379, https://e2:2379')).toEqual(['http://10.0.0.1:2379', 'https://e2:2379'])
  })

  it('fails fast with E_FLOCK_STORE_UNAVAILABLE when no etcd answers', async () => {
    const s = new EtcdFlockStore({ endpoints: ['http://127.0.0.1:9'], flock: 'x', callTimeoutMs: 500 })
    stores.push(s)
    await expect(s.topology()).rejects.toMatchObject({ code: 'E_FLOCK_STORE_UNAVAILABLE' })
    await expect(s.leadership('a').acquire(2000)).rejects.toMatchObject({ code: 'E_FLOCK_STORE_UNAVAILABLE' })
  })
})

describe('EtcdLeadership', () => {
  it('grants the key to one holder; the other gets it only after the holder\'s lease expired', async () => {
    const a = store('lead').leadership('a')
    const b = store('lead').leadership('b')
    expect(await a.acquire(2000)).toBe(true)
    expect(await b.acquire(2000)).toBe(false)
    expect(await b.current()).toBe('a')
    expect(a.validUntil()).toBeGreaterThan(Date.now())
    expect(await a.renew()).toBe(true)
    // a stops renewing: b acquires only once a's lease is gone in etcd, never before a's validUntil.
    const aValid = a.validUntil()
    const got = await waitFor('b acquires', async () => ((await b.acquire(2000)) ? Date.now() : false), 20_000, 100)
    expect(got).toBeGreaterThanOrEqual(aValid)
    expect(await a.renew()).toBe(false)
    expect(a.validUntil()).toBe(0)
    await b.release()
    expect(await a.current()).toBeUndefined()
  })

  it('lets a restarted kernel of the holding node take the key over without waiting for expiry', async () => {
    const first = store('takeover').leadership('node-a')
    expect(await first.acquire(10_000)).toBe(true)
    // The kernel dies without releasing; a new kernel on the same node has a new client.
    const second = store('takeover').leadership('node-a')
    expect(await second.acquire(10_000)).toBe(true)
    expect(await store('takeover').leadership('node-b').acquire(10_000)).toBe(false)
    expect(await second.renew()).toBe(true)
    await second.release()
  })

  it('renews again on the first attempt after etcd answers again (no client-side circuit breaker holding a member closed)', async () => {
    const a = store('stall').leadership('a')
    expect(await a.acquire(10_000)).toBe(true)
    // etcd goes away (a crashed member, or every member busy electing a leader): renewals fail …
    await etcd.crash()
    // (the HA tick keeps reading the leader key meanwhile; those reads fail too)
    for (let i = 0; i < 3; i++) {
      expect(await a.renew()).toBe(false)
      await expect(a.current()).rejects.toThrow()
    }
    await etcd.start()
    // … and the very next one after it answers again is confirmed. etcd3's default fault
    // handling opened a breaker for 5 s after three errors, so this renewal failed and a
    // healthy primary demoted itself.
    expect(await a.renew()).toBe(true)
    await a.release()
  })

  it('a holder that stops renewing is taken over once its key went unchanged for the lease on the taker\'s clock; a renewal the taker missed makes the take-over fail', async () => {
    const s = store('stale')
    const a = s.leadership('a', { ttlMs: 2000 })
    let now = 0
    const b = new EtcdLeadership(s, 'b', Date.now, 1500, 2000, () => now)
    expect(await a.acquire(2000)).toBe(true)
    expect(await b.current()).toBe('a')
    // a renews; b does not see it (no watch, no read) and times the older revision.
    expect(await a.renew()).toBe(true)
    now = 2000
    expect(await b.acquire(2000)).toBe(false)
    expect(await a.renew()).toBe(true)
    expect(await s.client.get(s.key('leader')).string()).toBe('a')
    // b reads the newer revision and times it; a stops renewing (a dead host).
    expect(await b.current()).toBe('a')
    now = 3999
    expect(await b.current()).toBe('a')
    expect(await b.acquire(2000)).toBe(false)
    now = 4000
    expect(await b.current()).toBeUndefined()
    expect(await b.acquire(2000)).toBe(true)
    expect(await s.client.get(s.key('leader')).string()).toBe('b')
    // a learns it for certain at its next renewal (the heartbeat's compare fails).
    expect(await a.renew()).toBe(false)
    expect(a.validUntil()).toBe(0)
    await b.release()
    await a.release()
  })

  it('bounds a holder by the send time of its last confirmed renewal: validUntil = sent + lease', async () => {
    let wall = 1_000_000
    const s = new EtcdFlockStore({ endpoints: [etcd.endpoint], flock: 'vu', callTimeoutMs: 1500, clock: () => wall })
    stores.push(s)
    const a = s.leadership('a', { ttlMs: 2500 })
    const acquiring = a.acquire(2500)
    // The clock moves on while the request is in flight: the answer's arrival does not count.
    wall = 2_000_000
    expect(await acquiring).toBe(true)
    expect(a.validUntil()).toBe(1_000_000 + 2500)
    const renewing = a.renew()
    wall = 3_000_000
    expect(await renewing).toBe(true)
    expect(a.validUntil()).toBe(2_000_000 + 2500)
    await a.release()
    expect(a.validUntil()).toBe(0)
  })

  it('tells a watcher the moment a holder turns stale, while etcd still has its key (a lease kept alive elsewhere)', async () => {
    const s = store('stalewatch')
    // A key whose holder's lease stays alive but which nobody rewrites: only the heartbeat's
    // silence can free it.
    const lease = s.client.lease(30)
    await lease.put(s.key('leader')).value('a')
    const b = s.leadership('b', { ttlMs: 1000 })
    const seen: Array<string | undefined> = []
    const stop = b.watch((h) => seen.push(h))
    await waitFor('a seen', async () => seen.includes('a'), 10_000)
    await waitFor('a stale', async () => seen.at(-1) === undefined, 10_000)
    expect(await s.client.get(s.key('leader')).string()).toBe('a')
    expect(await b.acquire(1000)).toBe(true)
    expect(await s.client.get(s.key('leader')).string()).toBe('b')
    await waitFor('b seen', async () => seen.at(-1) === 'b', 10_000)
    stop()
    await b.release()
    await lease.revoke()
  })

  it('reports holder changes to a watcher', async () => {
    const a = store('lw').leadership('a')
    const seen: Array<string | undefined> = []
    const stop = a.watch((h) => seen.push(h))
    await waitFor('initial', async () => seen.length >= 1, 10_000)
    await a.acquire(2000)
    await waitFor('a seen', async () => seen.includes('a'), 10_000)
    await a.release()
    await waitFor('nobody seen', async () => seen.at(-1) === undefined && seen.length >= 3, 10_000)
    stop()
  })
})

describe('nodeList', () => {
  it('refuses a node whose lease is unsafe beside the leases other nodes published (before anything starts)', async () => {
    const s = store('lease')
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code)
    // An empty flock: nothing to compare with.
    expect(await code(checkLeaseSettings({ store: s, node: 'c', ttlMs: 2500, marginMs: 1000 }))).toBe('ok')
    await s.updateTopology((t) => ({ ...t, nodes: { a: { name: 'a', address: '10.0.0.1', joinedAt: 'now' }, b: { name: 'b', address: '10.0.0.2', joinedAt: 'now' } } }))
    // a published its lease (10 s, as NodeHa does every tick); b's record is from a build before it.
    await s.putMember({ node: 'a', instance: 'a_1', role: 'primary', at: 1, ttlMs: 10_000, marginMs: 1000 })
    await s.putMember({ node: 'b', instance: 'b_1', role: 'replica', at: 1 })
    expect(await code(checkLeaseSettings({ store: s, node: 'c', ttlMs: 10_000, marginMs: 1000 }))).toBe('ok')
    expect(await code(checkLeaseSettings({ store: s, node: 'c', ttlMs: 2500, marginMs: 1000 }))).toBe('E_NODE_LEASE_MISMATCH')
    await expect(checkLeaseSettings({ store: s, node: 'c', ttlMs: 2500, marginMs: 1000 })).rejects.toMatchObject({ hint: expect.stringContaining('--ttl 10') as string })
    // A node is not compared with its own (older) record; b's, once published, counts.
    expect(await code(checkLeaseSettings({ store: s, node: 'a', ttlMs: 2500, marginMs: 1000 }))).toBe('ok')
    await s.putMember({ node: 'b', instance: 'b_1', role: 'replica', at: 2, ttlMs: 2500, marginMs: 1000 })
    expect(await code(checkLeaseSettings({ store: s, node: 'a', ttlMs: 10_000, marginMs: 1000 }))).toBe('E_NODE_LEASE_MISMATCH')
  })

  it('shows nodes, instances, published roles, lag behind the leader, the lease holder and the last failover', async () => {
    const s = store('nl')
    const l = s.leadership('a')
    expect(await l.acquire(5000)).toBe(true)
    await s.updateTopology(() => ({
      nodes: {
        a: { name: 'a', address: '10.0.0.1', joinedAt: 'x', kernel: { pid: 10, startedAt: 'y' } },
        b: { name: 'b', address: '10.0.0.2', joinedAt: 'x' },
        c: { name: 'c', address: '10.0.0.3', joinedAt: 'x' },
      },
      instances: {
        a_1: { name: 'a_1', node: 'a', role: 'primary', port: 5432, sync: true },
        b_1: { name: 'b_1', node: 'b', role: 'replica', port: 5432, sync: true },
      },
    }))
    await s.putMember({ node: 'a', instance: 'a_1', role: 'primary', lsn: '0/3000100', sentence: 'holding', at: 1000 })
    await s.putMember({ node: 'b', instance: 'b_1', role: 'replica', lsn: '0/3000000', sentence: 'following a', at: 1500 })
    await s.updateStatus((st) => ({ ...st, syncStandby: 'b_1' }))
    await s.recordFailover({ from: 'b', to: 'a', reason: 'test', at: 'z', automatic: true })
    const r = await nodeList(s, 'nl', 2000)
    expect(r).toMatchObject({ flock: 'nl', leader: 'a', syncStandby: 'b_1', lastFailover: { from: 'b', to: 'a' } })
    expect(r.nodes).toEqual([
      { name: 'a', address: '10.0.0.1', kernel: { pid: 10, startedAt: 'y' }, instance: 'a_1', standby: 'sync', role: 'primary', lsn: '0/3000100', lagBytes: null, seenAgoMs: 1000, decision: 'holding' },
      { name: 'b', address: '10.0.0.2', kernel: null, instance: 'b_1', standby: 'sync', role: 'replica', lsn: '0/3000000', lagBytes: 256, seenAgoMs: 500, decision: 'following a' },
      { name: 'c', address: '10.0.0.3', kernel: null, instance: null, standby: null, role: 'unknown', lsn: null, lagBytes: null, seenAgoMs: null, decision: null },
    ])
    await l.release()
  })
})

describe('FileFlockStore', () => {
  it('keeps the same documents in the state directory, with no etcd', async () => {
    const tmp = tempDir()
    try {
      const s = new FileFlockStore(tmp.dir)
      await s.updateTopology((t) => ({ ...t, instances: { p: { name: 'p', node: 'local', role: 'primary', port: 5432, sync: false } } }))
      expect((await new FileFlockStore(tmp.dir).topology()).instances.p?.role).toBe('primary')
      await s.recordFailover({ from: 'p', to: 'r', reason: 'x', at: 'now', automatic: true })
      expect(await s.history()).toHaveLength(1)
      const l = s.leadership('k1')
      expect(await l.acquire(5000)).toBe(true)
      expect(await s.leadership('k2').current()).toBe('k1')
      await l.release()
    } finally {
      tmp.cleanup()
    }
  })
})
