import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderHaproxyCfg } from '../../src/health/haproxy.js'
import { createNetTopology, etcdCluster, nsExec, waitEtcdHealthy, type EtcdCluster, type NetHost, type NetTopology } from '../helpers/netns.js'
import { NODE, ROOT, RUN_JS, type CliResult } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { assertNeverTwoPrimaries as assertNeverTwoPrimariesIn, etcdGetFromClient, jsonLines, sqlFromClient } from '../helpers/mh-harness.js'
import type { NodeListResult } from '../../src/cluster/node-list.js'
import type { StatusOutput } from '../../src/api/core.js'
import type { SwitchoverDetail } from '../../src/cluster/switchover.js'
import type { NodeInviteResult } from '../../src/commands/node/invite.js'
import type { TlsRenewResult } from '../../src/commands/tls/renew.js'
import type { NodeJoinResult } from '../../src/commands/node/join.js'

/**
 * The KERNEL as a node of a multi-host flock, through the built CLI in network namespaces
 * (test/helpers/netns.ts): h1 runs an etcd member and `magflock up --etcd … --node h1 --listen
 * 10.231.0.1` (TLS from `tls init`), h2 gets the flock's CA and passwords and runs `magflock
 * node join …`, cloning h1 over TLS with the replication role (the manual path); h3 joins with
 * a bundle from `node invite` on h1 (`node join --bundle`). One topology for the file; the
 * tests run in order.
 */
const CLIENT = path.join(ROOT, 'test/helpers/mh-client.mjs')
const FLOCK = 'mhk'

let net: NetTopology
let etcd: EtcdCluster
let h1: NetHost, h2: NetHost, h3: NetHost
let password = ''
const project = (h: NetHost) => path.join(h.dir, 'project')
const stateOf = (h: NetHost) => path.join(project(h), '.magflock')
const envOf = (h: NetHost) => ({
  MAGFLOCK_MASTER_KEY: Buffer.alloc(32, h.name === 'h1' ? 1 : 2).toString('base64'),
  MAGFLOCK_PREFS_DIR: path.join(h.dir, 'prefs'),
  NO_COLOR: '1',
})

/** The built CLI inside a host's namespace (the kernel it launches lives there too). */
async function cliOn<T = unknown>(h: NetHost, args: string[], opts: { input?: string; cwd?: string } = {}): Promise<CliResult<T>> {
  const r = await execa('ip', ['netns', 'exec', h.ns, NODE, RUN_JS, ...args], {
    cwd: opts.cwd ?? project(h),
    env: envOf(h),
    reject: false,
    timeout: 240_000,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
  })
  const stdout = String(r.stdout ?? '')
  let json: CliResult<T>['json']
  try {
    json = stdout.trim().startsWith('{') ? JSON.parse(stdout) : undefined
  } catch {
    json = undefined
  }
  return { exitCode: r.exitCode ?? -1, stdout, stderr: String(r.stderr ?? ''), json }
}

function ok<T>(r: CliResult<T>, what: string): T {
  if (!r.json?.ok) throw new Error(`${what} failed (exit ${r.exitCode}): ${r.stdout.slice(0, 2000)} ${r.stderr.slice(0, 2000)}`)
  return r.json.data
}

/** SQL from the client namespace over the network: TLS (hostssl), superuser, SCRAM. */
function sqlOn(h: NetHost, q: string): Array<Record<string, unknown>> {
  return sqlFromClient(net, CLIENT, h, q, { PGPASSWORD: password, PGSSLMODE: 'no-verify' })
}

function etcdGet(key: string): string {
  return etcdGetFromClient(net, etcd.endpoints, FLOCK, key)
}

const probes = new Map<string, Array<{ t: number; p: number }>>()
const acked: number[] = []
let writer: ChildProcess | undefined
let haproxy: ChildProcess | undefined
const HAPROXY = '/usr/sbin/haproxy'
const HAPROXY_WRITE = 6000
const HAPROXY_READ = 6001

/** A health endpoint's status from the client namespace (0: no answer). */
function healthOf(h: NetHost, p: string, method = 'GET'): number {
  const js = `fetch('http://${h.addr}:8432${p}', { method: '${method}', signal: AbortSignal.timeout(5000) }).then((r) => console.log(r.status), () => console.log(0))`
  return Number(execFileSync('ip', ['netns', 'exec', net.client.ns, process.execPath, '-e', js], { encoding: 'utf8' }).trim())
}

/** SQL through HAProxy's port in the client namespace. */
function sqlThroughHaproxy(port: number, q: string): Array<Record<string, unknown>> {
  const out = execFileSync('ip', ['netns', 'exec', net.client.ns, process.execPath, CLIENT, 'sql', `127.0.0.1:${port}`, q], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', PGPASSWORD: password, PGSSLMODE: 'no-verify' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return JSON.parse(out) as Array<Record<string, unknown>>
}

/** The address of the server a new connection through HAProxy's port reaches ('' if none). */
function throughHaproxy(port: number): string {
  try {
    const row = sqlThroughHaproxy(port, 'select host(inet_server_addr()) as a, pg_is_in_recovery() as r')[0]
    return row ? `${String(row.a)}${row.r ? ' (standby)' : ''}` : ''
  } catch {
    return ''
  }
}

/** Several new connections in a row reach the same server (HAProxy's checks have settled). */
function haproxyReachesOnly(port: number, want: string): boolean {
  for (let i = 0; i < 5; i++) if (throughHaproxy(port) !== want) return false
  return true
}


/** Samples from the client namespace whether each host's instance is a writable primary. */
function startProbe(h: NetHost): void {
  const samples: Array<{ t: number; p: number }> = []
  probes.set(h.name, samples)
  const p = net.spawn(net.client, process.execPath, [CLIENT, 'probe', `${h.addr}:5432`], { env: { PGPASSWORD: password, PGSSLMODE: 'no-verify' } })
  jsonLines(p, (o) => samples.push(o as { t: number; p: number }))
}

const primaryNow = (h: NetHost) => probes.get(h.name)?.at(-1)?.p === 1

/** The hunter: at no sampled moment were both instances primaries. */
function assertNeverTwoPrimaries(): void {
  assertNeverTwoPrimariesIn(probes.get('h1') ?? [], probes.get('h2') ?? [])
}

async function waitAcks(more: number, timeoutMs = 60_000): Promise<void> {
  const target = acked.length + more
  await waitFor(`${more} more acknowledged writes`, async () => acked.length >= target, timeoutMs, 50)
}

function ids(h: NetHost): Set<number> {
  return new Set(sqlOn(h, 'select id from acks').map((r) => Number(r.id)))
}

function writeProject(h: NetHost): void {
  mkdirSync(project(h), { recursive: true })
  // The node's address goes into its certificate (tls.sans); Postgres listens there because
  // of --listen. fsync off: a test machine. health.enabled: each node's health port (5432 +
  // 3000) answers HAProxy in the client namespace.
  writeFileSync(path.join(project(h), 'magflock.yaml'), `flock: ${FLOCK}\npostgres:\n  port: 5432\n  settings:\n    fsync: "off"\ntls:\n  nodeName: ${h.name}\n  sans: ["${h.addr}"]\nhealth:\n  enabled: true\n`)
}

// A 10 s lease: a kernel restarted by `magflock up` on a loaded machine is back well within it,
// so "no failover" after a kernel kill does not depend on how fast the machine is.
const nodeArgs = (h: NetHost) => ['--etcd', etcd.endpoints.join(','), '--node', h.name, '--listen', h.addr, '--ttl', '10']

async function copySecret(name: string, to: NetHost = h2): Promise<void> {
  const v = ok(await cliOn<{ value: string }>(h1, ['secrets', 'get', name, '--reveal', '--json']), `secrets get ${name}`).value
  ok(await cliOn(to, ['secrets', 'set', name, '--from-stdin', '--json'], { input: v }), `secrets set ${name}`)
}

beforeAll(async () => {
  net = createNetTopology(3)
  ;[h1, h2, h3] = net.hosts as [NetHost, NetHost, NetHost]
  etcd = etcdCluster(net, [h1])
  await etcd.start(h1)
  await waitEtcdHealthy(h1, 90_000)
  writeProject(h1)
  writeProject(h2)
  writeProject(h3)
  ok(await cliOn(h1, ['tls', 'init', '--json']), 'tls init on h1')
}, 120_000)

afterAll(async () => {
  writer?.kill('SIGKILL')
  haproxy?.kill('SIGKILL')
  for (const h of [h1, h2, h3]) if (h && existsSync(stateOf(h))) await cliOn(h, ['down', '--json']).catch(() => undefined)
  net?.destroy()
}, 120_000)

describe('the kernel as a node of a multi-host flock (etcd, TLS, network namespaces)', () => {
  it('bad node flags are refused with a clear error and leave the state directory untouched', async () => {
    const partial = await cliOn(h2, ['up', '--etcd', etcd.endpoints[0] as string, '--node', 'h2', '--json'])
    expect(partial.exitCode).toBe(2)
    expect(partial.json?.ok === false && partial.json.error.code).toBe('E_NODE_FLAGS_INCOMPLETE')
    const badName = await cliOn(h2, ['up', '--etcd', etcd.endpoints[0] as string, '--node', 'H2!', '--listen', h2.addr, '--json'])
    expect(badName.json?.ok === false && badName.json.error.code).toBe('E_NODE_NAME_INVALID')
    const loop = await cliOn(h2, ['up', '--etcd', etcd.endpoints[0] as string, '--node', 'h2', '--listen', '127.0.0.1', '--json'])
    expect(loop.json?.ok === false && loop.json.error.code).toBe('E_NODE_LISTEN_INVALID')
    const badEtcd = await cliOn(h2, ['up', '--etcd', 'etcd1:2379', '--node', 'h2', '--listen', h2.addr, '--json'])
    expect(badEtcd.json?.ok === false && badEtcd.json.error.code).toBe('E_ETCD_ENDPOINT_INVALID')
    // h2 has no certificates yet: a node never listens on the network without TLS.
    const noTls = await cliOn(h2, ['up', ...nodeArgs(h2), '--json'])
    expect(noTls.json?.ok === false && noTls.json.error.code).toBe('E_TLS_REQUIRED')
    expect(existsSync(path.join(stateOf(h2), 'cluster.json'))).toBe(false)
    expect(existsSync(path.join(stateOf(h2), 'instances', 'h2_1', 'data'))).toBe(false)
  }, 120_000)

  it('up --etcd --node --listen: the kernel takes the leader key, initialises the primary and serves it over TLS', async () => {
    const up = ok(await cliOn<StatusOutput>(h1, ['up', ...nodeArgs(h1), '--json']), 'up --etcd on h1')
    expect(up.instances.map((i) => [i.name, i.role])).toEqual([['h1_1', 'primary']])
    expect(up.components.map((c) => c.name)).toContain('cluster-node')
    expect(etcdGet('leader')).toBe('h1')
    password = ok(await cliOn<{ value: string }>(h1, ['secrets', 'get', 'postgres.superuser.password', '--reveal', '--json']), 'password').value
    // From the client's namespace: TLS is on, writes are accepted.
    await waitFor('h1 answers over the network', async () => sqlOn(h1, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')[0]?.ssl === true, 30_000, 200)
    sqlOn(h1, 'create table acks (id bigint primary key)')
    sqlOn(h1, 'insert into acks select generate_series(1, 100)')
    const list = ok(await cliOn<NodeListResult>(h1, ['node', 'list', '--etcd', etcd.endpoints.join(','), '--flock', FLOCK, '--json']), 'node list')
    expect(list.leader).toBe('h1')
    expect(list.nodes.find((n) => n.name === 'h1')).toMatchObject({ address: h1.addr, instance: 'h1_1' })
    // The same flags again are fine; another node name on this state directory is not.
    const again = await cliOn(h1, ['up', ...nodeArgs(h1), '--json'])
    expect(again.exitCode).toBe(0)
    const other = await cliOn(h1, ['up', '--etcd', etcd.endpoints.join(','), '--node', 'h9', '--listen', h1.addr, '--json'])
    expect(other.json?.ok === false && other.json.error.code).toBe('E_NODE_SETTINGS_CONFLICT')
  }, 180_000)

  it('a second first node is refused: the flock already has its primary', async () => {
    // h2 with its own certificate (from the flock CA), started as a FIRST node by mistake.
    await copySecret('tls.ca.key')
    mkdirSync(path.join(stateOf(h2), 'tls'), { recursive: true })
    writeFileSync(path.join(stateOf(h2), 'tls', 'ca.crt'), readFileSync(path.join(stateOf(h1), 'tls', 'ca.crt')))
    ok(await cliOn(h2, ['tls', 'rotate', '--json']), 'tls rotate on h2')
    const second = await cliOn(h2, ['up', ...nodeArgs(h2), '--json'])
    expect(second.json?.ok === false && second.json.error.code).toBe('E_NODE_FLOCK_LED_ELSEWHERE')
    expect(existsSync(path.join(stateOf(h2), 'cluster.json'))).toBe(false)
    expect(existsSync(path.join(stateOf(h2), 'instances', 'h2_1', 'data'))).toBe(false)
    expect(etcdGet('leader')).toBe('h1')
  }, 180_000)

  it('node join without the flock\'s passwords is refused and leaves nothing behind', async () => {
    const r = await cliOn(h2, ['node', 'join', ...nodeArgs(h2), '--json'])
    expect(r.json?.ok === false && r.json.error.code).toBe('E_NODE_SECRETS_MISSING')
    expect(existsSync(path.join(stateOf(h2), 'cluster.json'))).toBe(false)
  }, 120_000)

  it('node join: h2 clones the leader over TLS with the replication role, streams, and becomes the sync standby', async () => {
    await copySecret('postgres.superuser.password')
    await copySecret('replication.replicator.password')
    // A lease shorter than h1's (10 s, published in its member record) minus h1's margin
    // would let h2 take the key while h1 still writes: refused before anything starts.
    const shortLease = await cliOn(h2, ['node', 'join', ...nodeArgs(h2).slice(0, -2), '--ttl', '3', '--json'])
    expect([shortLease.exitCode, shortLease.json?.ok === false && shortLease.json.error.code]).toEqual([6, 'E_NODE_LEASE_MISMATCH'])
    expect(shortLease.json?.ok === false && shortLease.json.error.hint).toContain('--ttl 10')
    expect(existsSync(path.join(stateOf(h2), 'cluster.json'))).toBe(false)
    const joined = ok(await cliOn<StatusOutput & { node: string }>(h2, ['node', 'join', ...nodeArgs(h2), '--json']), 'node join on h2')
    expect(joined.instances.map((i) => [i.name, i.role])).toEqual([['h2_1', 'replica']])
    await waitFor('h2_1 streams from h1 over TLS', async () =>
      sqlOn(h1, `select 1 from pg_stat_replication r join pg_stat_ssl s using (pid) where r.application_name = 'h2_1' and r.state = 'streaming' and r.usename = 'magflock_replicator' and s.ssl`).length === 1, 60_000, 250)
    await waitFor('h2_1 recorded as the sync standby', async () => JSON.parse(etcdGet('status') || '{}').syncStandby === 'h2_1', 30_000, 200)
    await waitFor('h2_1 synchronous', async () => sqlOn(h1, `select 1 from pg_stat_replication where application_name = 'h2_1' and sync_state = 'sync'`).length === 1, 30_000, 200)
    sqlOn(h1, 'insert into acks select generate_series(101, 200)')
    // Synchronous: the commit returned, so h2 has it (replay may trail by a moment).
    await waitFor('rows on h2', async () => Number(sqlOn(h2, 'select count(*) as n from acks')[0]?.n) === 200, 30_000, 100)
    expect(sqlOn(h2, 'select pg_is_in_recovery() as r')[0]?.r).toBe(true)
    const list = ok(await cliOn<NodeListResult>(h2, ['node', 'list', '--etcd', etcd.endpoints.join(','), '--flock', FLOCK, '--json']), 'node list')
    expect(list.nodes.map((n) => [n.name, n.role]).sort()).toEqual([['h1', 'primary'], ['h2', 'replica']])
  }, 240_000)

  it('kill -9 of the kernel on the primary\'s host: Postgres keeps serving, no failover, `magflock up` makes the same node again', async () => {
    const info = JSON.parse(readFileSync(path.join(stateOf(h1), 'kernel.json'), 'utf8')) as { pid: number }
    const history = etcdGet('history')
    process.kill(info.pid, 'SIGKILL')
    // Writes go on without a kernel (sync standby still confirms them).
    sqlOn(h1, 'insert into acks values (201)')
    const up = ok(await cliOn<StatusOutput>(h1, ['up', '--json']), 'up after kill')
    expect(up.components.map((c) => c.name)).toContain('cluster-node')
    await waitFor('the restarted kernel renews the key', async () => etcdGet('leader') === 'h1', 15_000, 200)
    sqlOn(h1, 'insert into acks values (202)')
    expect(etcdGet('history')).toBe(history)
    expect(sqlOn(h1, 'select pg_is_in_recovery() as r')[0]?.r).toBe(false)
    expect(sqlOn(h2, 'select pg_is_in_recovery() as r')[0]?.r).toBe(true)
  }, 180_000)
  it('a node kernel serves metrics and the Patroni health endpoints on its address; HAProxy with the template routes writes to the primary node', async () => {
    // Patroni's answers, from another host (the client namespace), on each node's address.
    await waitFor('health endpoints on both nodes', async () => healthOf(h1, '/primary') === 200 && healthOf(h2, '/replica') === 200, 60_000, 250)
    expect([healthOf(h1, '/read-write'), healthOf(h1, '/replica'), healthOf(h1, '/read-only'), healthOf(h1, '/health')]).toEqual([200, 503, 200, 200])
    expect([healthOf(h2, '/primary'), healthOf(h2, '/read-write'), healthOf(h2, '/read-only'), healthOf(h2, '/health')]).toEqual([503, 503, 200, 200])
    // The standby's lag against the leader's WAL position in etcd (synchronous: within 16 MB).
    await waitFor('h2 within 16MB of the leader', async () => healthOf(h2, '/replica?lag=16MB') === 200, 30_000, 250)
    expect(healthOf(h1, '/primary', 'OPTIONS')).toBe(200)
    expect(healthOf(h2, '/primary', 'OPTIONS')).toBe(503)
    expect(healthOf(h1, '/primary', 'POST')).toBe(405)
    // Metrics: the node's instance, on the node's loopback (metrics.port).
    const metricsJs = "fetch('http://127.0.0.1:9187/metrics').then((r) => r.text()).then((t) => console.log(t), () => console.log(''))"
    expect(nsExec(h1, process.execPath, ['-e', metricsJs])).toMatch(/magflock_postgres_in_recovery\{[^}]*instance="h1_1"[^}]*\} 0/)
    expect(nsExec(h2, process.execPath, ['-e', metricsJs])).toMatch(/magflock_postgres_in_recovery\{[^}]*instance="h2_1"[^}]*\} 1/)

    // HAProxy (Debian) in the client namespace with templates/haproxy.cfg, one server per node.
    mkdirSync(net.client.dir, { recursive: true })
    const cfgFile = path.join(net.client.dir, 'haproxy.cfg')
    writeFileSync(cfgFile, renderHaproxyCfg({
      servers: [h1, h2].map((h) => ({ name: `${h.name}_1`, host: h.addr, port: 5432 })),
      portOffset: 3000,
      primaryBind: `127.0.0.1:${HAPROXY_WRITE}`,
      replicaBind: `127.0.0.1:${HAPROXY_READ}`,
      statsBind: '127.0.0.1:6002',
      checkInterval: '500ms',
      fall: 2,
      rise: 1,
    }))
    const valid = spawnSync(HAPROXY, ['-c', '-f', cfgFile], { encoding: 'utf8' })
    expect(valid.status, valid.stdout + valid.stderr).toBe(0)
    haproxy = net.spawn(net.client, HAPROXY, ['-db', '-f', cfgFile])
    await waitFor('HAProxy routes writes to h1', async () => haproxyReachesOnly(HAPROXY_WRITE, h1.addr), 60_000, 250)
    await waitFor('HAProxy routes reads to h2', async () => haproxyReachesOnly(HAPROXY_READ, `${h2.addr} (standby)`), 60_000, 250)
  }, 180_000)

  it('switchover --to across hosts, asked of the replica\'s kernel: carried out by the leader\'s node, no acknowledged write lost', async () => {
    startProbe(h1)
    startProbe(h2)
    writer = net.spawn(net.client, process.execPath, [CLIENT, 'writer', `${h1.addr}:5432,${h2.addr}:5432`, '1000'], { env: { PGPASSWORD: password, PGSSLMODE: 'no-verify' } })
    jsonLines(writer, (o) => {
      if (typeof o.ack === 'number') acked.push(o.ack)
    })
    await waitAcks(20)
    const r = ok(await cliOn<SwitchoverDetail>(h2, ['switchover', '--to', 'h2_1', '--json']), 'switchover to h2_1')
    expect(r).toMatchObject({ from: 'h1_1', to: 'h2_1' })
    expect(r.timeline).toBeGreaterThan(1)
    expect(etcdGet('leader')).toBe('h2')
    await waitFor('h2 primary', async () => primaryNow(h2), 30_000, 50)
    await waitAcks(20)
    // The old primary rejoins as the new sync standby.
    await waitFor('h1_1 streams from h2', async () => sqlOn(h2, `select 1 from pg_stat_replication where application_name = 'h1_1' and state = 'streaming'`).length === 1, 90_000, 250)
    await waitFor('h1_1 recorded as the sync standby', async () => JSON.parse(etcdGet('status') || '{}').syncStandby === 'h1_1', 30_000, 200)
    const onH2 = ids(h2)
    expect(acked.filter((id) => !onH2.has(id))).toEqual([])
    // Bad input: the primary itself, an unknown instance.
    const self = await cliOn(h1, ['switchover', '--to', 'h2_1', '--json'])
    expect(self.json?.ok === false && self.json.error.code).toBe('E_NODE_SWITCHOVER_TARGET')
    const unknown = await cliOn(h1, ['switchover', '--to', 'h7_1', '--json'])
    expect(unknown.json?.ok === false && unknown.json.error.code).toBe('E_NODE_SWITCHOVER_TARGET')
    expect(etcdGet('leader')).toBe('h2')
    assertNeverTwoPrimaries()
  }, 240_000)

  it('after the cross-host switchover, HAProxy routes a client\'s writes to h2 and reads to h1', async () => {
    await waitFor('HAProxy routes writes to h2 only', async () => haproxyReachesOnly(HAPROXY_WRITE, h2.addr), 60_000, 250)
    await waitFor('HAProxy routes reads to h1 only', async () => haproxyReachesOnly(HAPROXY_READ, `${h1.addr} (standby)`), 60_000, 250)
    expect([healthOf(h1, '/primary'), healthOf(h2, '/primary'), healthOf(h1, '/replica'), healthOf(h2, '/replica')]).toEqual([503, 200, 200, 503])
    // A write through HAProxy's write port lands on the new primary, and reaches h1 by replication.
    expect(sqlThroughHaproxy(HAPROXY_WRITE, 'insert into acks values (-1) returning id')).toEqual([{ id: '-1' }])
    await waitFor('the row on h1 too (replicated)', async () => sqlOn(h1, 'select 1 from acks where id = -1').length === 1, 30_000, 100)
  }, 180_000)

  it('kill -9 of the kernel on the primary\'s host in the middle of a switchover: the next kernel finishes or rolls it back; never two primaries, no acknowledged write lost', async () => {
    await waitAcks(10)
    const info = JSON.parse(readFileSync(path.join(stateOf(h2), 'kernel.json'), 'utf8')) as { pid: number }
    const fenceFile = path.join(stateOf(h2), 'instances', 'h2_1', 'fence.json')
    // Asked of h1's kernel; h2's node acts. The kernel dies once h2 stopped and fenced its primary.
    const asked = cliOn<SwitchoverDetail>(h1, ['switchover', '--to', 'h1_1', '--json'])
    await waitFor('h2 fenced its primary for the switchover', async () => existsSync(fenceFile), 60_000, 2)
    process.kill(info.pid, 'SIGKILL')
    ok(await cliOn<StatusOutput>(h2, ['up', '--json']), 'up on h2 after the kill')
    // The restarted kernel closes the open request: finished (h1 leads) or carried out again.
    const answer = await asked
    // One primary serves again (h1: finished; h2: rolled back), with every acknowledged write.
    await waitFor('a primary serves', async () => primaryNow(h1) || primaryNow(h2), 60_000, 50)
    const leader = etcdGet('leader')
    expect(['h1', 'h2']).toContain(leader)
    if (answer.json?.ok) expect(leader).toBe('h1')
    await waitAcks(20)
    const onPrimary = ids(leader === 'h1' ? h1 : h2)
    expect(acked.filter((id) => !onPrimary.has(id))).toEqual([])
    // The other one follows the leader again.
    const other = leader === 'h1' ? 'h2_1' : 'h1_1'
    await waitFor(`${other} streams from ${leader}`, async () => sqlOn(leader === 'h1' ? h1 : h2, `select 1 from pg_stat_replication where application_name = '${other}' and state = 'streaming'`).length === 1, 90_000, 250)
    assertNeverTwoPrimaries()
  }, 240_000)

  it('replica add on a node is refused with the `node join` to run; node join --async: h3 streams asynchronously and is never made the sync standby', async () => {
    const leader = etcdGet('leader')
    const [lh, other] = leader === 'h1' ? [h1, h2] : [h2, h1]
    for (const args of [['replica', 'add', '--node', 'h3', '--sync'], ['replica', 'add']]) {
      const refused = await cliOn(lh, [...args, '--json'])
      expect(refused.exitCode).toBe(5)
      expect(refused.json?.ok === false && refused.json.error.code).toBe('E_NODE_REPLICA_ADD')
      expect(refused.json?.ok === false && refused.json.error.hint).toContain('magflock node join')
    }
    // h3 joins with a bundle: `node invite` on h1 (it holds the flock CA key; the key stays
    // there), `node join --bundle` on h3 with the code. Bad input first: nothing is imported.
    const bundleFile = path.join(h3.dir, 'h3.join')
    const inv = ok(await cliOn<NodeInviteResult>(h1, ['node', 'invite', 'h3', '--san', h3.addr, '--out', bundleFile, '--json']), 'node invite h3 on h1')
    expect(inv).toMatchObject({ node: 'h3', flock: FLOCK, invitedBy: 'h1', etcd: etcd.endpoints, file: bundleFile })
    expect(inv.certNames).toContain(h3.addr)
    expect(statSync(bundleFile).mode & 0o777).toBe(0o600)
    const replicator = ok(await cliOn<{ value: string }>(h1, ['secrets', 'get', 'replication.replicator.password', '--reveal', '--json']), 'replicator password').value
    const audit = readFileSync(path.join(stateOf(h1), 'audit', 'audit.jsonl'), 'utf8')
    const inviteRecord = audit.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; result: string; details: Record<string, unknown> }).find((r) => r.action === 'node.invite' && r.result === 'ok')
    expect(inviteRecord?.details).toMatchObject({ node: 'h3', sans: [h3.addr], certFingerprint: inv.certFingerprint })
    const bundleText = readFileSync(bundleFile, 'utf8')
    for (const secret of [password, replicator]) {
      expect(bundleText).not.toContain(secret)
      expect(JSON.stringify(inv)).not.toContain(secret)
      expect(audit).not.toContain(secret)
    }
    expect(bundleText).not.toContain(inv.code)
    expect(audit).not.toContain(inv.code)
    const again = await cliOn(h1, ['node', 'invite', 'h3', '--san', h3.addr, '--out', bundleFile, '--json'])
    expect([again.exitCode, again.json?.ok === false && again.json.error.code]).toEqual([4, 'E_NODE_INVITE_OUT_EXISTS'])
    const taken = await cliOn(h1, ['node', 'invite', 'h2', '--san', h2.addr, '--out', path.join(h3.dir, 'h2.join'), '--json'])
    expect([taken.exitCode, taken.json?.ok === false && taken.json.error.code]).toEqual([4, 'E_NODE_INVITE_EXISTS'])
    expect(existsSync(path.join(h3.dir, 'h2.join'))).toBe(false)
    const joinArgs = ['node', 'join', '--bundle', bundleFile, '--listen', h3.addr]
    const wrongCode = await cliOn(h3, [...joinArgs, '--code', 'AAAAA-AAAAA-AAAAA-AAAAA', '--async', '--json'])
    expect([wrongCode.exitCode, wrongCode.json?.ok === false && wrongCode.json.error.code]).toEqual([9, 'E_NODE_BUNDLE_CODE_WRONG'])
    const wrongNode = await cliOn(h3, [...joinArgs, '--code', inv.code, '--node', 'h4', '--async', '--json'])
    expect(wrongNode.json?.ok === false && wrongNode.json.error.code).toBe('E_NODE_BUNDLE_WRONG_NODE')
    const both = await cliOn(h3, [...joinArgs, '--code', inv.code, '--sync', '--async', '--json'])
    expect(both.exitCode).toBe(2)
    expect(existsSync(path.join(stateOf(h3), 'cluster.json'))).toBe(false)
    expect(existsSync(path.join(stateOf(h3), 'tls', 'node.crt'))).toBe(false)
    await waitFor(`${other.name}_1 recorded as the sync standby`, async () => JSON.parse(etcdGet('status') || '{}').syncStandby === `${other.name}_1`, 60_000, 200)
    // A lease unsafe beside the flock's (3 s against 10 s) is refused when the kernel starts,
    // after the import: the import is taken back with the settings, nothing is left.
    const shortLease = await cliOn(h3, [...joinArgs, '--code', inv.code, '--ttl', '3', '--async', '--json'])
    expect([shortLease.exitCode, shortLease.json?.ok === false && shortLease.json.error.code]).toEqual([6, 'E_NODE_LEASE_MISMATCH'])
    expect(existsSync(path.join(stateOf(h3), 'cluster.json'))).toBe(false)
    expect(existsSync(path.join(stateOf(h3), 'tls', 'node.crt'))).toBe(false)
    expect(ok(await cliOn<{ secrets: Array<{ name: string }> }>(h3, ['secrets', 'list', '--json']), 'secrets list on h3').secrets).toEqual([])
    // --etcd, --node and the lease TTL come from the bundle.
    const joined = ok(await cliOn<NodeJoinResult & { started: true }>(h3, [...joinArgs, '--code', inv.code, '--async', '--json']), 'node join --bundle --async on h3')
    expect(joined.bundle?.imported.sort()).toEqual(['postgres.superuser.password', 'replication.replicator.password', 'tls.node.key', 'tls/ca.crt', 'tls/node.crt'])
    expect(joined).toMatchObject({ node: 'h3', etcd: etcd.endpoints })
    expect(JSON.stringify(joined)).not.toContain(password)
    expect(JSON.parse(readFileSync(path.join(stateOf(h3), 'cluster.json'), 'utf8'))).toMatchObject({ node: 'h3', ttlMs: 10_000 })
    const h3Secrets = ok(await cliOn<{ secrets: Array<{ name: string }> }>(h3, ['secrets', 'list', '--json']), 'secrets list on h3')
    expect(h3Secrets.secrets.map((x) => x.name)).not.toContain('tls.ca.key')
    expect(joined.standby).toBe('async')
    expect(joined.instances.map((i) => [i.name, i.role])).toEqual([['h3_1', 'replica']])
    await waitFor('h3_1 streams asynchronously', async () => sqlOn(lh, `select 1 from pg_stat_replication where application_name = 'h3_1' and state = 'streaming' and sync_state = 'async'`).length === 1, 90_000, 250)
    expect(JSON.parse(etcdGet('topology')).instances.h3_1).toMatchObject({ node: 'h3', sync: false })
    // Renewal: h3 holds no CA key, so `tls rotate` cannot renew its certificate. h1 issues a
    // renewal bundle for it (`node invite --renew`: no passwords in it), h3 installs it with
    // `tls renew`, and its Postgres serves the new certificate at once (SIGHUP), still streaming.
    const served = () => nsExec(h1, 'sh', ['-c', `openssl s_client -starttls postgres -connect ${h3.addr}:5432 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`])
    expect(served()).toContain(inv.certFingerprint)
    const renewFile = path.join(h3.dir, 'h3.renew')
    const notJoin = await cliOn(h3, ['tls', 'renew', '--bundle', bundleFile, '--code', inv.code, '--json'])
    expect([notJoin.exitCode, notJoin.json?.ok === false && notJoin.json.error.code]).toEqual([2, 'E_NODE_BUNDLE_KIND'])
    const unknown = await cliOn(h1, ['node', 'invite', 'h9', '--renew', '--san', '10.231.0.99', '--out', renewFile, '--json'])
    expect([unknown.exitCode, unknown.json?.ok === false && unknown.json.error.code]).toEqual([3, 'E_NODE_RENEW_UNKNOWN'])
    expect(existsSync(renewFile)).toBe(false)
    const ren = ok(await cliOn<NodeInviteResult>(h1, ['node', 'invite', 'h3', '--renew', '--san', h3.addr, '--out', renewFile, '--json']), 'node invite h3 --renew on h1')
    expect(ren).toMatchObject({ node: 'h3', renew: true, invitedBy: 'h1' })
    expect(ren.certFingerprint).not.toBe(inv.certFingerprint)
    const renewRecord = readFileSync(path.join(stateOf(h1), 'audit', 'audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; result: string; details: Record<string, unknown> }).filter((r) => r.action === 'node.invite' && r.result === 'ok').at(-1)
    expect(renewRecord?.details).toMatchObject({ node: 'h3', renew: true, certFingerprint: ren.certFingerprint })
    const renewed = ok(await cliOn<TlsRenewResult>(h3, ['tls', 'renew', '--bundle', renewFile, '--code', ren.code, '--json']), 'tls renew on h3')
    expect(renewed.renewal).toEqual({ node: 'h3', replaced: ['tls/node.crt', 'tls.node.key'], unchanged: ['tls/ca.crt'], caReplaced: false })
    expect(renewed.reloaded).toEqual(['h3_1'])
    expect(renewed.cert?.fingerprint256).toBe(ren.certFingerprint)
    expect(JSON.stringify(renewed)).not.toContain(password)
    await waitFor('h3\'s Postgres serves the renewed certificate', async () => served().includes(ren.certFingerprint), 15_000, 250)
    await waitFor('h3_1 still streams', async () => sqlOn(lh, `select 1 from pg_stat_replication where application_name = 'h3_1' and state = 'streaming'`).length === 1, 30_000, 250)
    const list = ok(await cliOn<NodeListResult>(h3, ['node', 'list', '--etcd', etcd.endpoints.join(','), '--flock', FLOCK, '--json']), 'node list')
    expect(list.nodes.map((n) => [n.name, n.standby])).toEqual([['h1', 'sync'], ['h2', 'sync'], ['h3', 'async']])
    // The same node with the other choice is refused (a node does not change in place).
    const flip = await cliOn(h3, ['node', 'join', ...nodeArgs(h3), '--sync', '--json'])
    expect(flip.json?.ok === false && flip.json.error.code).toBe('E_NODE_SETTINGS_CONFLICT')
    // The sync standby's node goes down and the recorded choice is cleared: the leader looks
    // for a new sync standby among the streaming nodes and must not take the async h3.
    ok(await cliOn(other, ['down', '--json']), `down on ${other.name}`)
    execFileSync('ip', ['netns', 'exec', net.client.ns, 'etcdctl', '--endpoints', etcd.endpoints.join(','), 'put', `/magflock/${FLOCK}/status`, JSON.stringify({ ...JSON.parse(etcdGet('status') || '{}'), syncStandby: null })], { stdio: 'ignore' })
    const memberAt = () => Number(JSON.parse(etcdGet(`member/${leader}`) || '{}').at ?? 0)
    const from = memberAt()
    // Twenty HA ticks of the leader later (each publishes its member record), still no sync standby.
    for (let i = 0; i < 20; i++) {
      const seen = memberAt()
      await waitFor('the leader\'s next HA tick', async () => memberAt() > seen, 30_000, 50)
    }
    expect(memberAt()).toBeGreaterThan(from)
    expect(JSON.parse(etcdGet('status') || '{}').syncStandby).toBeNull()
    expect(sqlOn(lh, `select sync_state from pg_stat_replication where application_name = 'h3_1'`)).toEqual([{ sync_state: 'async' }])
  }, 240_000)
})
