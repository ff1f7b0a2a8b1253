import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNetTopology, etcdCluster, waitEtcdHealthy, type EtcdCluster, type NetHost, type NetTopology } from '../helpers/netns.js'
import { NODE, ROOT, RUN_JS, type CliResult } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import type { NodeListResult } from '../../src/cluster/node-list.js'
import type { StatusOutput } from '../../src/api/core.js'

/**
 * The KERNEL as a node of a multi-host flock, through the built CLI in network namespaces
 * (test/helpers/netns.ts): h1 runs an etcd member and `magflock up --etcd … --node h1 --listen
 * 10.231.0.1` (TLS from `tls init`), h2 gets the flock's CA and passwords and runs `magflock
 * node join …`, cloning h1 over TLS with the replication role. One topology for the file; the
 * tests run in order.
 */
const CLIENT = path.join(ROOT, 'test/helpers/mh-client.mjs')
const FLOCK = 'mhk'

let net: NetTopology
let etcd: EtcdCluster
let h1: NetHost, h2: NetHost
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
  const out = execFileSync('ip', ['netns', 'exec', net.client.ns, process.execPath, CLIENT, 'sql', `${h.addr}:5432`, q], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', PGPASSWORD: password, PGSSLMODE: 'no-verify' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return JSON.parse(out) as Array<Record<string, unknown>>
}

function etcdGet(key: string): string {
  return execFileSync('ip', ['netns', 'exec', net.client.ns, 'etcdctl', '--endpoints', etcd.endpoints.join(','), '--command-timeout=2s', 'get', `/magflock/${FLOCK}/${key}`, '--print-value-only'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

function writeProject(h: NetHost): void {
  mkdirSync(project(h), { recursive: true })
  // The node's address goes into its certificate (tls.sans); Postgres listens there because
  // of --listen. fsync off: a test machine.
  writeFileSync(path.join(project(h), 'magflock.yaml'), `flock: ${FLOCK}\npostgres:\n  port: 5432\n  settings:\n    fsync: "off"\ntls:\n  nodeName: ${h.name}\n  sans: ["${h.addr}"]\n`)
}

const nodeArgs = (h: NetHost) => ['--etcd', etcd.endpoints.join(','), '--node', h.name, '--listen', h.addr]

async function copySecret(name: string): Promise<void> {
  const v = ok(await cliOn<{ value: string }>(h1, ['secrets', 'get', name, '--reveal', '--json']), `secrets get ${name}`).value
  ok(await cliOn(h2, ['secrets', 'set', name, '--from-stdin', '--json'], { input: v }), `secrets set ${name}`)
}

beforeAll(async () => {
  net = createNetTopology(2)
  ;[h1, h2] = net.hosts as [NetHost, NetHost]
  etcd = etcdCluster(net, [h1])
  await etcd.start(h1)
  await waitEtcdHealthy(h1)
  writeProject(h1)
  writeProject(h2)
  ok(await cliOn(h1, ['tls', 'init', '--json']), 'tls init on h1')
}, 120_000)

afterAll(async () => {
  for (const h of [h1, h2]) if (h && existsSync(stateOf(h))) await cliOn(h, ['down', '--json']).catch(() => undefined)
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
})
