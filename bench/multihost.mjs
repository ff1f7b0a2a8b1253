// Multi-host failover: MagFlock (dist/cluster/agent.js) vs Patroni 3.0.2 (Debian `patroni`),
// alternating trials in one run, on the same topology: three network namespaces joined by a
// bridge (10.231.0.0/24), one etcd member each; Postgres nodes on h1 and h2, synchronous
// replication; a writer in a client namespace inserting one row at a time.
// Per trial: kill the whole primary host → first acknowledged write on the new primary, and
// acknowledged writes missing there; restart the host → time until it streams again (rejoin);
// then a planned switchover back to the rejoined host (write outage: last acknowledged write
// before → first after); then partition that primary's host → overlap between its last moment
// as a primary and the first moment of the next one (must be ≤ 0).
// Needs root, iproute2, etcd-server, patroni. Writes docs/benchmarks/multihost.md.
//   node bench/multihost.mjs [--trials 5] [--only magflock|patroni]
import { execFileSync, spawn } from 'node:child_process'
import { appendFileSync, mkdirSync, rmSync, writeFileSync, chownSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { ROOT, NODE, log, stats, table, machine, writeSection, mergeBenchmarks, pgBin } from './lib.mjs'

const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined)
const TRIALS = Number(arg('--trials') ?? 5) || 5
/** --only magflock|patroni: one system (a quick check; the table then has one column of data). */
const ONLY = arg('--only')
const AGENT = path.join(ROOT, 'dist/cluster/agent.js')
const CLIENT = path.join(ROOT, 'test/helpers/mh-client.mjs')
const PASSWORD = `bench-${Math.random().toString(36).slice(2)}`
const TAG = `mfns-mh${process.pid}`
const PG = pgBin()
const LOGS = path.join(os.tmpdir(), `mf-bench-mh-logs-${process.pid}`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const ip = (...a) => execFileSync('ip', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const pgUser = { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) }

async function waitFor(what, fn, ms = 120_000, every = 50) {
  const end = Date.now() + ms
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await sleep(every)
  }
}

function killNs(ns) {
  for (let i = 0; i < 5; i++) {
    let pids
    try {
      pids = ip('netns', 'pids', ns).split('\n').map(Number).filter((p) => p > 0)
    } catch {
      return
    }
    if (!pids.length) return
    for (const p of pids) try { process.kill(p, 'SIGKILL') } catch { /* gone */ }
    execFileSync('sleep', ['0.05'])
  }
}

function topology(dir) {
  const sw = `${TAG}-sw`
  const made = []
  ip('netns', 'add', sw); made.push(sw)
  ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge'); ip('-n', sw, 'link', 'set', 'br0', 'up')
  const mk = (name, octet) => {
    const h = { name, ns: `${TAG}-${name}`, addr: `10.231.0.${octet}`, port: `p${octet}`, dir: path.join(dir, name) }
    ip('netns', 'add', h.ns); made.push(h.ns)
    ip('-n', h.ns, 'link', 'set', 'lo', 'up')
    ip('link', 'add', 'eth0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', h.port, 'netns', sw)
    ip('-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0'); ip('-n', h.ns, 'link', 'set', 'eth0', 'up')
    ip('-n', sw, 'link', 'set', h.port, 'master', 'br0'); ip('-n', sw, 'link', 'set', h.port, 'up')
    mkdirSync(h.dir, { recursive: true, mode: 0o755 })
    return h
  }
  const hosts = [mk('h1', 1), mk('h2', 2), mk('h3', 3)]
  const client = mk('cl', 100)
  return {
    hosts, client,
    spawn(h, cmd, args, env = {}, stderr = false) {
      return spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: ['ignore', 'pipe', stderr ? 'pipe' : 'ignore'], env: { PATH: process.env.PATH, HOME: os.tmpdir(), ...env } })
    },
    partition: (h) => ip('-n', sw, 'link', 'set', h.port, 'down'),
    heal: (h) => ip('-n', sw, 'link', 'set', h.port, 'up'),
    killHost: (h) => killNs(h.ns),
    destroy() {
      for (const ns of made.reverse()) { killNs(ns); try { ip('netns', 'del', ns) } catch { /* gone */ } }
    },
  }
}

function lines(p, on) {
  readline.createInterface({ input: p.stdout }).on('line', (l) => { try { on(JSON.parse(l)) } catch { /* not ours */ } })
}

function startEtcd(net, h, state = 'new') {
  const initial = net.hosts.map((x) => `${x.name}=http://${x.addr}:2380`).join(',')
  const p = net.spawn(h, 'etcd', ['--name', h.name, '--data-dir', path.join(h.dir, 'etcd'),
    '--listen-client-urls', `http://${h.addr}:2379`, '--advertise-client-urls', `http://${h.addr}:2379`,
    '--listen-peer-urls', `http://${h.addr}:2380`, '--initial-advertise-peer-urls', `http://${h.addr}:2380`,
    '--initial-cluster', initial, '--initial-cluster-state', state, '--initial-cluster-token', TAG,
    '--heartbeat-interval', '50', '--election-timeout', '500', '--logger', 'zap', '--log-level', 'error'])
  p.stdout.resume()
  return p
}

function sqlOn(net, h, q) {
  const out = execFileSync('ip', ['netns', 'exec', net.client.ns, NODE, CLIENT, 'sql', `${h.addr}:5432`, q], { encoding: 'utf8', env: { PATH: process.env.PATH, PGPASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] })
  return JSON.parse(out)
}

/** Runs a command in a host's namespace; resolves with its stdout (rejects on a non-zero exit). */
function runIn(net, h, cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: os.tmpdir() } })
    let o = ''
    let e = ''
    p.stdout.on('data', (d) => (o += d))
    p.stderr.on('data', (d) => (e += d))
    p.on('close', (code) => (code === 0 ? resolve(o) : reject(new Error(`${cmd} exited ${code}: ${(e || o).slice(-300)}`))))
  })
}

/**
 * Watches the leader key from the client namespace: the moments it stopped naming `holder`
 * (deleted at lease expiry or release, or written by another node). etcdctl prints three lines
 * per event: PUT or DELETE, the key, the value.
 */
function watchHolder(net, key, holder) {
  const released = []
  const p = spawn('ip', ['netns', 'exec', net.client.ns, 'etcdctl', '--endpoints', net.hosts.map((x) => `http://${x.addr}:2379`).join(','), 'watch', key], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH, ETCDCTL_API: '3' } })
  let ev = []
  readline.createInterface({ input: p.stdout }).on('line', (l) => {
    if (l === 'PUT' || l === 'DELETE') ev = [l]
    else ev.push(l)
    if (ev.length === 3 && (ev[0] === 'DELETE' || ev[2] !== holder)) released.push(Date.now())
  })
  return { released, stop: () => p.kill('SIGKILL') }
}

function etcdGet(net, key) {
  return execFileSync('ip', ['netns', 'exec', net.client.ns, 'etcdctl', '--endpoints', net.hosts.map((x) => `http://${x.addr}:2379`).join(','), '--command-timeout=2s', 'get', key, '--print-value-only'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

// --- the two systems ---------------------------------------------------------------------
// Each says when its DCS records a host as the synchronous standby: in sync mode only that
// standby may be promoted, so a partition before the record exists would (rightly) promote
// nobody. Both get the same wait before the partition step.

const magflock = {
  name: 'MagFlock',
  leaderKey: '/magflock/bench/leader',
  /** Per host: the agent's JSON lines (decisions with their time), for the phase breakdown. */
  events: {},
  // The same request path as `magflock switchover --to` on a kernel node (requestSwitchover →
  // desired/<leader> in etcd → the leader's NodeSwitchover), from the client namespace.
  async switchover(net, from, to) {
    const o = await runIn(net, net.client, NODE, [AGENT, 'switchover', path.join(to.dir, 'agent.json'), `${to.name}_1`])
    const last = o.split('\n').filter(Boolean).map((l) => JSON.parse(l)).at(-1)
    if (!last?.switchover) throw new Error(`switchover: ${o.slice(-300)}`)
    return last.switchover.phases
  },
  start(net, h, bootstrap, template) {
    const cfg = { node: h.name, flock: 'bench', etcd: net.hosts.map((x) => `http://${x.addr}:2379`), listen: h.addr, port: 5432, allowCidr: '10.231.0.0/24', instanceDir: path.join(h.dir, 'pg'), bootstrap, template, mode: 'sync', ...this.extra }
    writeFileSync(path.join(h.dir, 'agent.json'), JSON.stringify(cfg))
    const p = net.spawn(h, NODE, [AGENT, path.join(h.dir, 'agent.json')], { MAGFLOCK_AGENT_PASSWORD: PASSWORD })
    // The last agent lines of each host stay in LOGS for a failed trial.
    mkdirSync(LOGS, { recursive: true })
    const ev = (this.events[h.name] = [])
    lines(p, (o) => {
      ev.push(o)
      appendFileSync(path.join(LOGS, `${h.name}.log`), JSON.stringify(o) + '\n')
    })
  },
  syncRecorded: (net, h) => JSON.parse(etcdGet(net, '/magflock/bench/status') || '{}').syncStandby === `${h.name}_1`,
}

const patroni = {
  name: 'Patroni 3.0.2 (tuned: ttl 10, loop_wait 2, retry_timeout 5)',
  leaderKey: '/service/bench/leader',
  events: {},
  async switchover(net, from, to) {
    await runIn(net, from, 'patronictl', ['-c', path.join(from.dir, 'patroni.yml'), 'switchover', '--leader', from.name, '--candidate', to.name, '--force'])
    return undefined
  },
  syncRecorded: (net, h) => JSON.parse(etcdGet(net, '/service/bench/sync') || '{}').sync_standby === h.name,
  start(net, h) {
    const data = path.join(h.dir, 'pgdata')
    mkdirSync(path.join(h.dir, 'run'), { recursive: true })
    const yml = `scope: bench
name: ${h.name}
restapi:
  listen: ${h.addr}:8008
  connect_address: ${h.addr}:8008
etcd3:
  hosts: ${net.hosts.map((x) => `${x.addr}:2379`).join(',')}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {wal_level: replica, hot_standby: "on", max_wal_senders: 10, max_replication_slots: 10, wal_log_hints: "on"}
  initdb: [{encoding: UTF8}, data-checksums]
postgresql:
  listen: ${h.addr}:5432
  connect_address: ${h.addr}:5432
  data_dir: ${data}
  bin_dir: ${PG}
  pgpass: ${h.dir}/run/pgpass
  authentication:
    superuser: {username: postgres, password: ${PASSWORD}}
    replication: {username: replicator, password: ${PASSWORD}}
    rewind: {username: rewinder, password: ${PASSWORD}}
  parameters: {unix_socket_directories: ${h.dir}/run}
  pg_hba:
    - local all all trust
    - host all all 10.231.0.0/24 scram-sha-256
    - host replication replicator 10.231.0.0/24 scram-sha-256
watchdog: {mode: "off"}
`
    writeFileSync(path.join(h.dir, 'patroni.yml'), yml)
    for (const d of [h.dir, path.join(h.dir, 'run')]) chownSync(d, pgUser.uid, pgUser.gid)
    chownSync(path.join(h.dir, 'patroni.yml'), pgUser.uid, pgUser.gid)
    const p = net.spawn(h, 'setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', 'env', 'HOME=/var/lib/postgresql', 'PATH=/usr/bin:/bin', 'LANG=C.UTF-8', 'patroni', path.join(h.dir, 'patroni.yml')], {}, true)
    // Patroni logs to stderr: kept in LOGS, to explain a trial that fails.
    mkdirSync(LOGS, { recursive: true })
    p.stdout.resume()
    p.stderr.on('data', (d) => appendFileSync(path.join(LOGS, `patroni-${h.name}.log`), d))
  },
}

function makeTemplate(dir) {
  const data = path.join(dir, 'template')
  mkdirSync(dir, { recursive: true }); chownSync(dir, pgUser.uid, pgUser.gid)
  writeFileSync(path.join(dir, 'pw'), PASSWORD); chownSync(path.join(dir, 'pw'), pgUser.uid, pgUser.gid)
  execFileSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', path.join(PG, 'initdb'), '-D', data, '-U', 'postgres', '--pwfile', path.join(dir, 'pw'), '--auth=scram-sha-256', '-k', '--no-sync'], { stdio: 'ignore' })
  return data
}

async function trial(sys, template) {
  const dir = path.join(os.tmpdir(), `mf-bench-mh-${process.pid}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  const net = topology(dir)
  const [h1, h2] = net.hosts
  const r = {}
  try {
    for (const h of net.hosts) startEtcd(net, h)
    await sleep(1500)
    sys.start(net, h1, 'primary', template)
    await waitFor('h1 primary', async () => sqlOn(net, h1, 'select not pg_is_in_recovery() as p')[0]?.p === true, 120_000, 300)
    sqlOn(net, h1, 'create table if not exists acks (id bigint primary key)')
    sys.start(net, h2, 'replica', template)
    await waitFor('h2 sync standby', async () => sqlOn(net, h1, `select 1 from pg_stat_replication where sync_state = 'sync'`).length === 1, 180_000, 300)
    const acks = []
    const writer = net.spawn(net.client, NODE, [CLIENT, 'writer', `${h1.addr}:5432,${h2.addr}:5432`], { PGPASSWORD: PASSWORD })
    lines(writer, (o) => { if (typeof o.ack === 'number') acks.push(o) })
    await waitFor('30 writes', async () => acks.length >= 30)
    const keyWatch = watchHolder(net, sys.leaderKey, h1.name)
    const h2Probe = []
    const probe2 = net.spawn(h2, NODE, [CLIENT, 'probe', `${h2.addr}:5432`], { PGPASSWORD: PASSWORD })
    lines(probe2, (o) => h2Probe.push(o))
    await sleep(500)

    // 1. host killed. Phases: the leader key released, seen by a watch in the client namespace
    // (MagFlock: taken over by the replica; Patroni: deleted at its TTL), the new primary's
    // promote decision (MagFlock's agent log),
    // the first acknowledged write (promotion + the writer's 20 ms retry).
    const t0 = Date.now()
    net.killHost(h1)
    const first = await waitFor('first write on h2', async () => acks.find((a) => a.t > t0 && a.host === h2.addr), 120_000)
    r.rto = first.t - t0
    const expired = keyWatch.released.find((t) => t > t0)
    if (expired) r.keyGone = expired - t0
    const decided = (sys.events.h2 ?? []).find((e) => e.t > t0 && e.decision === 'promote')
    if (decided) r.promoteDecided = decided.t - t0
    const writable = h2Probe.find((x) => x.t > t0 && x.p === 1)
    if (writable) r.writable = writable.t - t0
    keyWatch.stop()
    probe2.kill('SIGKILL')
    await waitFor('10 more', async () => acks.filter((a) => a.t > first.t).length >= 10)
    const have = new Set(sqlOn(net, h2, 'select id from acks').map((x) => Number(x.id)))
    r.lost = acks.filter((a) => !have.has(a.ack)).length

    // 2. rejoin
    const t1 = Date.now()
    startEtcd(net, h1, 'existing')
    sys.start(net, h1, 'replica', template)
    await waitFor('h1 streams again', async () => sqlOn(net, h2, `select 1 from pg_stat_replication where state = 'streaming'`).length === 1, 180_000, 200)
    r.rejoin = Date.now() - t1
    await waitFor('h1 sync again', async () => sqlOn(net, h2, `select 1 from pg_stat_replication where sync_state = 'sync'`).length === 1, 120_000, 200)
    await waitFor('h1 recorded as the sync standby', async () => sys.syncRecorded(net, h1), 120_000, 200)

    // 3. planned switchover h2 → h1 (the sync standby's host): outage = the last acknowledged
    // write on h2 before → the first on h1 after.
    await waitFor('writes on h2', async () => acks.filter((a) => a.t > Date.now() - 1000 && a.host === h2.addr).length >= 10, 60_000)
    const ts = Date.now()
    const phases = await sys.switchover(net, h2, h1)
    const firstH1 = await waitFor('first write on h1 after the switchover', async () => acks.find((a) => a.t > ts && a.host === h1.addr), 60_000)
    const lastH2 = acks.filter((a) => a.t < firstH1.t && a.host === h2.addr).at(-1)
    r.switchover = firstH1.t - (lastH2?.t ?? ts)
    if (phases) r.switchoverPhases = phases
    await waitFor('10 more on h1', async () => acks.filter((a) => a.t > firstH1.t).length >= 10)
    const haveSw = new Set(sqlOn(net, h1, 'select id from acks').map((x) => Number(x.id)))
    r.lostSwitchover = acks.filter((a) => !haveSw.has(a.ack)).length
    await waitFor('h2 sync standby of h1', async () => sqlOn(net, h1, `select 1 from pg_stat_replication where sync_state = 'sync'`).length === 1, 180_000, 200)
    await waitFor('h2 recorded as the sync standby', async () => sys.syncRecorded(net, h2), 120_000, 200)

    // 4. partition of the primary's host (h1 again): probes inside h1 and h2 sample "is a primary"
    const samples = { h1: [], h2: [] }
    for (const h of [h1, h2]) {
      const p = net.spawn(h, NODE, [CLIENT, 'probe', `${h.addr}:5432`], { PGPASSWORD: PASSWORD })
      lines(p, (o) => samples[h.name].push(o))
    }
    await sleep(1000)
    const t2 = Date.now()
    net.partition(h1)
    const firstNew = await waitFor('h2 promoted after h1 was partitioned', async () => samples.h2.find((s) => s.t > t2 && s.p === 1), 60_000)
    const lastOld = Math.max(0, ...samples.h1.filter((s) => s.p === 1).map((s) => s.t))
    r.overlap = lastOld - firstNew.t
    r.oldStopped = lastOld - t2
    writer.kill('SIGKILL')
  } catch (err) {
    // Keep what was measured before the failing step; the table lists the failure.
    r.failed = err.message
  } finally {
    net.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
  return r
}

// Stale namespaces of a killed bench run.
for (const line of ip('netns', 'list').split('\n')) {
  const ns = line.split(' ')[0] ?? ''
  const m = /^mfns-mh(\d+)-/.exec(ns)
  if (m) { try { process.kill(Number(m[1]), 0) } catch { killNs(ns); try { ip('netns', 'del', ns) } catch { /* gone */ } } }
}

const tdir = path.join(os.tmpdir(), `mf-bench-mh-tpl-${process.pid}`)
const template = makeTemplate(tdir)
const SYSTEMS = [magflock, patroni]
const results = Object.fromEntries(SYSTEMS.map((x) => [x.name, []]))
for (let i = 0; i < TRIALS; i++) {
  // Each trial round starts with the next system: every system gets every position.
  const order = [...SYSTEMS.slice(i % SYSTEMS.length), ...SYSTEMS.slice(0, i % SYSTEMS.length)]
  for (const sys of order.filter((x) => !ONLY || x === (ONLY === 'patroni' ? patroni : magflock))) {
    log(`trial ${i + 1}/${TRIALS}: ${sys.name}`)
    const r = await trial(sys, template)
    log(`  ${JSON.stringify(r)}`)
    results[sys.name].push(r)
  }
}
rmSync(tdir, { recursive: true, force: true })

const col = (name, key, f = (v) => `${(v / 1000).toFixed(2)} s`) => {
  const ok = results[name].filter((r) => r[key] !== undefined).map((r) => r[key])
  return ok.length ? `${f(stats(ok).p50)} (n=${ok.length}, ${f(Math.min(...ok))}–${f(Math.max(...ok))})` : 'n/a'
}
const rows = [
  ['host killed → first acknowledged write on the new primary (median)', ...SYSTEMS.map((s) => col(s.name, 'rto'))],
  ['  per trial', ...SYSTEMS.map((s) => results[s.name].map((r) => (r.rto === undefined ? '×' : `${(r.rto / 1000).toFixed(2)} s`)).join(', '))],
  ['  of which: kill → leader key no longer names the dead host (MagFlock: taken over; Patroni: deleted at its TTL; etcd watch; median)', ...SYSTEMS.map((s) => col(s.name, 'keyGone'))],
  ['  of which: kill → new primary decides to promote (median)', ...SYSTEMS.map((s) => col(s.name, 'promoteDecided'))],
  ['  of which: kill → new primary out of recovery (a probe on its host, every ~20 ms; median)', ...SYSTEMS.map((s) => col(s.name, 'writable'))],
  ['switchover write outage across hosts (last write before → first after, median)', ...SYSTEMS.map((s) => col(s.name, 'switchover'))],
  ['acknowledged writes lost, sync (per trial: host kill / switchover)', ...SYSTEMS.map((s) => results[s.name].map((r) => `${r.lost ?? '×'}/${r.lostSwitchover ?? '×'}`).join(', '))],
  ['killed host back → streaming again (rejoin, median)', ...SYSTEMS.map((s) => col(s.name, 'rejoin'))],
  ['partition: old primary\'s last primary sample − new primary\'s first (overlap, ≤ 0 is safe; per trial)', ...SYSTEMS.map((s) => results[s.name].map((r) => (r.overlap === undefined ? '×' : `${r.overlap} ms`)).join(', '))],
  ['partition: old primary stopped after the cut (median)', ...SYSTEMS.map((s) => col(s.name, 'oldStopped'))],
]
const NOTES = `
Notes. Host kill, where the time goes (the "of which" rows, all from the moment of the kill).
MagFlock: the leader rewrites its key every 250 ms (a heartbeat: the key's mod revision
changes); the replica times the last revision it saw on its own monotonic clock, and 2.5 s
(the lease) after it saw the last one a timer fires and the replica takes the key by a
compare-and-swap on that revision, so the key changes holder 2.25–2.5 s after the kill plus
the swap's round trip (the \`etcdctl watch\` in the client namespace sees that moment; the
replica's "decides to promote" comes a few ms before it: it decides, then swaps). Neither
etcd's expiry sweep (every 500 ms) nor an etcd leader election is in that path any more: when
the etcd raft leader dies with the host, the survivors elect a new one (0.5–1 s with these
settings) well before the replica's 2.5 s are up, and the lease extension a new etcd leader
grants does not matter (the etcd lease is only the backstop that deletes a dead holder's key).
Then the replica records itself as the last leader and promotes with \`pg_promote(wait =>
false)\` polled every 10 ms (the timeline switch, which copies and fsyncs the last WAL segment,
is most of it); the writer retries every 20 ms, alternating between the hosts, for both systems.
The old primary demotes itself 1.5 s after *sending* its last confirmed heartbeat (lease −
margin), which precedes the replica's receipt of it, so it has stopped writing at least 1 s
before the replica may take the key: the partition rows. A primary rides out 1.25 s of etcd
unavailability (lease − margin − renewal interval; 1.75 s with the former 3 s TTL, whose failover
waited for etcd to expire the lease). Patroni: its leader key expires at its TTL and the next HA
loop promotes.
Switchover: the agent records the request in etcd and the leader's node carries it out
(requestSwitchover / NodeSwitchover, the code path of \`magflock switchover --to\` on a kernel
node): fast stop + fence of the old primary, wait until the target replayed the shutdown
checkpoint, hand the key over, the target's loop takes it and promotes. Patroni:
\`patronictl switchover --leader --candidate --force\`. Outage = last acknowledged write on the
old primary → first on the new one.
Before the partition step both systems wait until their DCS records the other host as the
synchronous standby (MagFlock's status key, Patroni's /sync key): in sync mode only that standby
may be promoted.
`
const failures = Object.entries(results).flatMap(([n, rs]) => rs.map((r, i) => (r.failed ? `${n.replace(/ \(.*$/, '')} trial ${i + 1}: ${r.failed}` : '')).filter(Boolean))
const md = `## Several hosts: MagFlock vs Patroni on etcd (\`bench/multihost.mjs\`)

${machine()}. ${TRIALS} trials per system, alternating, each on a fresh topology: 3 network namespaces
(one etcd member each, heartbeat 50 ms, election 500 ms), Postgres on h1 and h2 with synchronous
replication, one writer inserting a row at a time from a client namespace. MagFlock defaults:
lease 2.5 s (the leader rewrites its key every 250 ms), margin 1 s, tick 250 ms.

${table(['', ...SYSTEMS.map((x) => x.name)], rows)}
${failures.length ? `\nFailed trials: ${failures.join('; ')}\n` : ''}${NOTES}`
console.log(md)
writeSection('multihost', md)
mergeBenchmarks()
