import type { ChildProcess } from 'node:child_process'
import { appendFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createNetTopology, etcdCluster, SUBNET, waitEtcdHealthy, type EtcdCluster, type NetHost, type NetTopology } from '../helpers/netns.js'
import { waitFor } from '../helpers/wait.js'
import { assertNeverTwoPrimaries as assertNeverTwoPrimariesIn, etcdGetFromClient, jsonLines, sqlFromClient } from '../helpers/mh-harness.js'

/**
 * Several hosts on one machine (test/helpers/netns.ts): h1..h3 each run an etcd member; h1 and
 * h2 each run a node (dist/cluster/agent.js: bootstrap + NodeHa loop) with its own Postgres,
 * sync mode. A writer in the client namespace counts acknowledged writes; a probe inside each
 * Postgres host samples whether its instance is a primary. One topology for the whole file:
 * the tests run in order and each starts from where the previous one left the flock.
 */
const ROOT = path.resolve(import.meta.dirname, '../..')
const AGENT = path.join(ROOT, 'dist/cluster/agent.js')
const CLIENT = path.join(ROOT, 'test/helpers/mh-client.mjs')
// The lease TTL of this file's nodes. Longer than the 3 s default: a node process killed and restarted
// must be back within it (test 4), which a loaded CI machine does not always manage in 3 s.
const TTL = 5000
const FLOCK = 'mh'

let net: NetTopology
let etcd: EtcdCluster
let h1: NetHost, h2: NetHost, h3: NetHost
const password = process.env.MAGFLOCK_TEST_PG_TEMPLATE_PASSWORD ?? `mh-${Math.random().toString(36).slice(2)}`
const agents = new Map<string, ChildProcess>()
const logs = new Map<string, string[]>()
const probes = new Map<string, Array<{ t: number; p: number }>>()
const probeProcs = new Map<string, ChildProcess>()
const acked: number[] = []
let writer: ChildProcess | undefined


function startAgent(h: NetHost, bootstrap: 'primary' | 'replica'): void {
  const cfg = {
    node: h.name,
    flock: FLOCK,
    etcd: etcd.endpoints,
    listen: h.addr,
    port: 5432,
    allowCidr: SUBNET,
    instanceDir: path.join(h.dir, 'pg'),
    bootstrap,
    ...(process.env.MAGFLOCK_TEST_PG_TEMPLATE ? { template: process.env.MAGFLOCK_TEST_PG_TEMPLATE } : {}),
    mode: 'sync',
    ttlMs: TTL,
  }
  const file = path.join(h.dir, 'agent.json')
  writeFileSync(file, JSON.stringify(cfg))
  const p = net.spawn(h, process.execPath, [AGENT, file], { env: { MAGFLOCK_AGENT_PASSWORD: password } })
  const log = logs.get(h.name) ?? []
  logs.set(h.name, log)
  jsonLines(p, (o) => {
    log.push(JSON.stringify(o))
    appendFileSync(path.join(h.dir, 'agent.log'), JSON.stringify(o) + '\n')
  })
  agents.set(h.name, p)
}

function startProbe(h: NetHost): void {
  const samples = probes.get(h.name) ?? []
  probes.set(h.name, samples)
  const p = net.spawn(h, process.execPath, [CLIENT, 'probe', `${h.addr}:5432`], { env: { PGPASSWORD: password } })
  jsonLines(p, (o) => samples.push(o as { t: number; p: number }))
  probeProcs.set(h.name, p)
}

function sqlOn(h: NetHost, q: string): Array<Record<string, unknown>> {
  return sqlFromClient(net, CLIENT, h, q, { PGPASSWORD: password })
}

function etcdGet(key: string): string {
  return etcdGetFromClient(net, etcd.endpoints, FLOCK, key)
}

const primaryNow = (h: NetHost) => probes.get(h.name)?.at(-1)?.p === 1
const lastPrimaryAt = (h: NetHost, after = 0) => Math.max(0, ...(probes.get(h.name) ?? []).filter((s) => s.p === 1 && s.t >= after).map((s) => s.t))
const firstPrimaryAt = (h: NetHost, after: number) => Math.min(Infinity, ...(probes.get(h.name) ?? []).filter((s) => s.p === 1 && s.t >= after).map((s) => s.t))

/** The hunter: at no sampled moment were two instances primaries (intervals of 1-sample slack). */
function assertNeverTwoPrimaries(): void {
  assertNeverTwoPrimariesIn(probes.get('h1') ?? [], probes.get('h2') ?? [])
}

function ids(h: NetHost): Set<number> {
  return new Set(sqlOn(h, 'select id from acks').map((r) => Number(r.id)))
}

async function waitAcks(more: number, timeoutMs = 60_000): Promise<void> {
  const target = acked.length + more
  await waitFor(`${more} more acknowledged writes`, async () => acked.length >= target, timeoutMs, 50)
}

async function waitStreaming(primary: NetHost, standby: NetHost): Promise<void> {
  await waitFor(`${standby.name} streaming from ${primary.name}`, async () =>
    sqlOn(primary, `select 1 from pg_stat_replication where application_name = '${standby.name}_1' and state = 'streaming'`).length === 1, 90_000, 250)
}

beforeAll(async () => {
  net = createNetTopology(3)
  ;[h1, h2, h3] = net.hosts as [NetHost, NetHost, NetHost]
  etcd = etcdCluster(net, net.hosts)
  for (const h of net.hosts) await etcd.start(h)
  for (const h of net.hosts) await waitEtcdHealthy(h)
  startAgent(h1, 'primary')
  await waitFor('h1 primary', async () => sqlOn(h1, 'select not pg_is_in_recovery() as p')[0]?.p === true, 90_000, 200)
  sqlOn(h1, 'create table if not exists acks (id bigint primary key)')
  startAgent(h2, 'replica')
  await waitStreaming(h1, h2)
  await waitFor('h2_1 recorded as the sync standby', async () => JSON.parse(etcdGet('status') || '{}').syncStandby === 'h2_1', 30_000, 200)
  startProbe(h1)
  startProbe(h2)
  writer = net.spawn(net.client, process.execPath, [CLIENT, 'writer', `${h1.addr}:5432,${h2.addr}:5432`], { env: { PGPASSWORD: password } })
  jsonLines(writer, (o) => {
    if (typeof o.ack === 'number') acked.push(o.ack)
  })
  await waitAcks(20)
}, 240_000)

// A failure in CI is only diagnosable from what the nodes logged: print each node's last lines
// and the probes' last samples with the failure.
afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return
  for (const [name, lines] of logs) process.stderr.write(`--- ${name} agent, last lines ---\n${lines.slice(-60).join('\n')}\n`)
  for (const [name, s] of probes) process.stderr.write(`--- ${name} probe, last samples: ${JSON.stringify(s.slice(-20))}\n`)
  process.stderr.write(`--- acknowledged writes: ${acked.length}, last at ${acked.at(-1)}\n`)
})

afterAll(() => {
  writer?.kill('SIGKILL')
  net?.destroy()
})

describe('multi-host flock on etcd (network namespaces)', () => {
  it('partition of the primary\'s host: it stops taking writes before the majority side promotes; healed, it rejoins without divergent writes', async () => {
    const cut = Date.now()
    net.partition(h1)
    await waitFor('h2 promoted', async () => primaryNow(h2), 60_000, 50)
    const h1Last = lastPrimaryAt(h1, cut)
    const h2First = firstPrimaryAt(h2, cut)
    expect(h1Last).toBeGreaterThan(0)
    expect(h1Last).toBeLessThan(h2First)
    await waitAcks(20)
    const onH2 = ids(h2)
    expect(acked.filter((id) => !onH2.has(id))).toEqual([])
    expect(etcdGet('leader')).toBe('h2')

    net.heal(h1)
    await waitStreaming(h2, h1)
    expect(primaryNow(h1)).toBe(false)
    await waitFor('h1_1 recorded as the sync standby', async () => JSON.parse(etcdGet('status') || '{}').syncStandby === 'h1_1', 30_000, 200)
    await waitAcks(10)
    const onH1 = ids(h1)
    const onH2b = ids(h2)
    expect([...onH1].filter((id) => !onH2b.has(id))).toEqual([])
    assertNeverTwoPrimaries()
  }, 180_000)

  it('losing 1 of 3 etcd members, the raft leader, changes nothing', async () => {
    const before = Date.now()
    // The hardest member to lose: the raft leader (a new election, and every lease renewal in
    // flight through it fails).
    const victim = etcd.leader(h1)
    etcd.stop(victim)
    await waitAcks(10)
    // Outlast two lease TTLs: a primary that could not renew would have demoted by now.
    await new Promise((r) => setTimeout(r, 2 * TTL))
    expect(etcdGet('leader')).toBe('h2')
    expect(firstPrimaryAt(h1, before)).toBe(Infinity)
    // The primary never stopped: no sample since the member was lost saw h2 other than primary.
    expect((probes.get('h2') ?? []).filter((s) => s.t > before && s.p !== 1)).toEqual([])
    await waitAcks(10)
    await etcd.start(victim, 'existing')
    await waitEtcdHealthy(victim)
  }, 120_000)

  it('killing the whole host holding the primary promotes the sync standby with 0 acknowledged writes lost', async () => {
    const cut = Date.now()
    net.killHost(h2)
    await waitFor('h1 promoted', async () => primaryNow(h1), 60_000, 50)
    expect(firstPrimaryAt(h1, cut)).toBeGreaterThan(cut)
    await waitAcks(10)
    const onH1 = ids(h1)
    expect(acked.filter((id) => !onH1.has(id))).toEqual([])
    expect(etcdGet('leader')).toBe('h1')
    // The host comes back: its etcd member rejoins, its node rejoins the flock as a replica.
    probes.set('h2', [])
    await etcd.start(h2, 'existing')
    startAgent(h2, 'replica')
    await waitStreaming(h1, h2)
    startProbe(h2)
    assertNeverTwoPrimaries()
  }, 180_000)

  it('killing the node process (not Postgres) on the primary\'s host causes no failover', async () => {
    const before = Date.now()
    const history = etcdGet('history')
    agents.get('h1')?.kill('SIGKILL')
    startAgent(h1, 'primary')
    await waitAcks(20)
    await new Promise((r) => setTimeout(r, TTL))
    expect(etcdGet('leader')).toBe('h1')
    expect(etcdGet('history')).toBe(history)
    expect(firstPrimaryAt(h2, before)).toBe(Infinity)
    // Postgres kept serving: no sample of h1 since the kill saw it down.
    expect((probes.get('h1') ?? []).filter((s) => s.t > before && s.p !== 1)).toEqual([])
  }, 120_000)

  it('losing etcd quorum: no promotion anywhere, the primary demotes itself; with quorum back a primary serves again with every acknowledged write', async () => {
    const cut = Date.now()
    etcd.stop(h2)
    etcd.stop(h3)
    await waitFor('h1 demoted itself', async () => !primaryNow(h1), 30_000, 50)
    // Its writes stopped within the lease TTL of the loss.
    expect(lastPrimaryAt(h1, cut) - cut).toBeLessThan(TTL + 500)
    await new Promise((r) => setTimeout(r, 2 * TTL))
    expect(firstPrimaryAt(h2, cut)).toBe(Infinity)
    const acksAtLoss = acked.length
    await etcd.start(h2, 'existing')
    await etcd.start(h3, 'existing')
    // Either h1 takes its key back (it was the last leader) or the sync standby h2 wins the free
    // key first; both hold every acknowledged write.
    await waitFor('a primary serves again', async () => primaryNow(h1) || primaryNow(h2), 60_000, 100)
    await waitFor('writes resume', async () => acked.length > acksAtLoss + 10, 60_000, 100)
    const onPrimary = ids(primaryNow(h1) ? h1 : h2)
    expect(acked.filter((id) => !onPrimary.has(id))).toEqual([])
    assertNeverTwoPrimaries()
  }, 120_000)
})
