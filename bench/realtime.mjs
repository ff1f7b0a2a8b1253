// Realtime (MagWS): commit→client latency, change throughput vs pg_recvlogical (same plugin,
// same WAL), broadcast fan-out, memory per idle connection, cost of RLS-checked delivery.
//
//   npm run build && node_modules/.bin/node bench/realtime.mjs
//   (CLIENTS=1000 RATE=500 SECONDS=3 ROWS=30000 IDLE=10000 FANOUT_ROUNDS=3 LAT_ROUNDS=5
//   LAT_WRITERS=native,node; kept short: the CPU
//   is shared; ONLY=latency,fanout,hubcpu,floor,… runs those parts, TRACE=1 adds the per-phase table;
//   FANOUT_THREADS=2 (0: off) adds the fan-out part's writer-thread prototype, FANOUT_SLICE_MS=0.5,
//   FLOOR_BYTES=300)
//
// The kernel runs as its own process (the built CLI's `kernel start`); the subscribers are raw
// `ws` clients speaking the same frames realtime-js sends (vsn 2.0.0), so the load measured is
// the kernel's, not a thousand realtime-js instances'; the latency part's subscribers run in a
// worker thread (bench/realtime-clients.mjs). Writes the "Realtime" section of
// docs/benchmarks.md.
import { execFileSync, spawn } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import WebSocket from 'ws'
import { performance } from 'node:perf_hooks'
import { clearInterval, setImmediate, setInterval } from 'node:timers'
import { Worker } from 'node:worker_threads'
import { freePort, log, machine, NODE, pgBin, ROOT, stats, table, tmp, writeSection } from './lib.mjs'

const CLIENTS = Number(process.env.CLIENTS ?? 1000)
const RATE = Number(process.env.RATE ?? 500)
const SECONDS = Number(process.env.SECONDS ?? 3)
const ROWS = Number(process.env.ROWS ?? 30000)
const IDLE = Number(process.env.IDLE ?? 10000)
/** Run some parts only (comma-separated): throughput, latency, fanout, hubcpu, floor, broadcast, idle, rls (the table then has their rows only). */
const ONLY = process.env.ONLY
const part = (name) => !ONLY || ONLY.split(',').includes(name)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const dir = tmp('mf-bench-rt-')
const pgPort = await freePort()
const rtPort = await freePort()
writeFileSync(
  path.join(dir, 'magflock.yaml'),
  `postgres:\n  port: ${pgPort}\n  settings:\n    max_connections: 200\nmetrics:\n  enabled: false\nbackup:\n  walArchiving: false\nrealtime:\n  enabled: true\n  port: ${rtPort}\n  maxChannelsPerClient: 10\n`,
)
// TRACE=1: the kernel stamps each change per phase (src/realtime/trace.ts) into this file.
const traceFile = path.join(dir, 'realtime-trace.json')
const env = { ...process.env, ...(process.env.TRACE ? { MAGFLOCK_REALTIME_TRACE: traceFile } : {}), MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 5).toString('base64'), MAGFLOCK_PREFS_DIR: path.join(dir, '.prefs') }
/** The built CLI's --json data; `extra` adds to its environment (a kernel it starts inherits it). */
const cli = (args, extra = {}) => JSON.parse(execFileSync(NODE, [path.join(ROOT, 'bin/run.js'), ...args, '--json'], { cwd: dir, env: { ...env, ...extra }, encoding: 'utf8' })).data
const kernelPid = () => JSON.parse(readFileSync(path.join(dir, '.magflock/kernel.json'), 'utf8')).pid
/**
 * CPU time (ms) a process has used so far, all its threads (V8's compiler and GC threads too):
 * the sum of each thread's run time in /proc/<pid>/task/<tid>/schedstat (nanoseconds; the
 * utime/stime of /proc/<pid>/stat count 10 ms clock ticks, too coarse for a 30 ms figure).
 * Threads that ended before the reading are not counted (V8's worker threads live as long as
 * the process).
 */
const cpuMs = (pid) => {
  let ns = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns / 1e6
}
/** With PROFILE_DIR and bench/cpu-prof-hook.mjs imported: the kernel writes its profile so far. */
const profileMark = async () => {
  if (!process.env.PROFILE_DIR) return
  process.kill(kernelPid(), 'SIGUSR2')
  await sleep(1000)
}
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024

/**
 * Teardown, however the bench ends (done, an error, Ctrl-C): \`down\` stops the kernel and every
 * Postgres of the flock; whatever still runs after it (a kernel that did not answer) is stopped
 * through the pid files under the bench's directory: postmasters get a fast shutdown (SIGINT).
 */
let tornDown = false
function teardown() {
  if (tornDown) return
  tornDown = true
  try {
    execFileSync(NODE, [path.join(ROOT, 'bin/run.js'), 'down', '--json'], { cwd: dir, env, stdio: 'ignore', timeout: 60_000 })
  } catch {
    // Checked below.
  }
  const alive = (pid) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  const pids = []
  for (const f of readdirSync(dir, { recursive: true })) {
    if (!String(f).endsWith('postmaster.pid')) continue
    const pid = Number(readFileSync(path.join(dir, String(f)), 'utf8').split('\n')[0])
    if (pid > 0 && alive(pid)) pids.push(pid)
  }
  try {
    const k = kernelPid()
    if (alive(k)) pids.push(k)
  } catch {
    // No kernel state left: the kernel is gone.
  }
  for (const pid of pids) process.kill(pid, 'SIGINT')
  const until = Date.now() + 30_000
  while (pids.some(alive) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL')
  // The flock's files (data directory, WAL): KEEP=1 leaves them for a look.
  if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true })
}
process.on('exit', teardown)
process.on('SIGINT', () => process.exit(130))
process.on('SIGTERM', () => process.exit(143))

log('starting a kernel with realtime enabled')
cli(['kernel', 'start'])
const password = cli(['secrets', 'get', 'postgres.superuser.password', '--reveal']).value
const conn = { host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: 'postgres' }
const db = new pg.Client(conn)
await db.connect()
/** Until the kernel's realtime change stream is connected. */
const waitStreaming = async () => {
  while (!cli(['realtime', 'status']).stream?.connected) await sleep(200)
}
await waitStreaming()
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
/** Figures the notes under the table quote. */
const fig = {}
const loadStart = os.loadavg()

// 1. Memory per idle connection (first: the later parts grow the kernel's heap, and RSS
//    does not shrink back, which would hide the connections' own cost).
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

// 2. Throughput ceiling: one table, one subscriber, vs pg_recvlogical on its own slot, in
//    TP_ROUNDS rounds after a first one that is reported but not counted: the kernel's first
//    transaction after it starts runs its code cold (V8 compiles the hot path while it runs;
//    pg_recvlogical is C), and a ceiling is what a running kernel sustains. The median of the
//    counted rounds' rates is compared, each round's ratio listed.
if (part('throughput')) {
  const TP_ROUNDS = Number(process.env.TP_ROUNDS ?? 9)
  log(`throughput: ${ROWS} rows in one transaction, a first round and ${TP_ROUNDS} counted`)
  let got = 0
  let last = 0
  const sub = await connect(superToken, 'tp', { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'bench' }] }, (d) => {
    if (d.toString().includes('"postgres_changes"')) {
      got++
      last = performance.now()
    }
  })
  const kpid = kernelPid()
  // The walsender decoding for the kernel (the same work pg_recvlogical's walsender does).
  const wpid = (await db.query(`select pid from pg_stat_replication where application_name = 'magflock-realtime'`)).rows[0]?.pid
  const sec = (m) => Number(m[1]) * 60_000 + Number(m[2]) * 1000
  /** pg_recvlogical from the bench's slot to `endpos`, with the kernel's plugin and publication. */
  const recvArgs = (endpos) => ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '--slot', 'bench_raw', '--start', '--endpos', endpos, '-o', 'proto_version=1', '-o', 'publication_names=magflock_realtime', '-f', '/dev/null', '--no-loop']
  const tpRound = async () => {
    got = 0
    await db.query(`select pg_create_logical_replication_slot('bench_raw', 'pgoutput')`)
    await profileMark()
    const w0 = wpid ? cpuMs(wpid) : 0
    const cpu0 = cpuMs(kpid)
    const client0 = process.cpuUsage()
    await db.query(`insert into bench (v, pad) select g, 'row ' || g from generate_series(1, ${ROWS}) g`)
    const tCommit = performance.now()
    const endpos = (await db.query('select pg_current_wal_lsn()::text as l')).rows[0].l
    const deadline = performance.now() + 120_000
    while (got < ROWS && performance.now() < deadline) await sleep(20)
    if (got < ROWS) throw new Error(`only ${got} of ${ROWS} rows arrived`)
    const rtMs = last - tCommit
    // Kernel CPU for the 30k rows (decode, RLS shortcut, JSON, frames, socket writes): a figure
    // the shared machine's load does not distort as much as wall time.
    const rtCpu = cpuMs(kpid) - cpu0
    const walCpu = wpid ? cpuMs(wpid) - w0 : NaN
    const cu = process.cpuUsage(client0)
    await profileMark()
    const clientCpu = (cu.user + cu.system) / 1000
    // pg_recvlogical: same plugin and publication, decoding the same transaction from its slot;
    // bash's \`times\` gives its CPU time.
    const r0 = performance.now()
    const timesOut = await new Promise((resolve, reject) => {
      const p = spawn('bash', ['-c', '"$0" "$@" && times', path.join(pgBin(), 'pg_recvlogical'), ...recvArgs(endpos)], { env: { ...process.env, PGPASSWORD: password }, stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      p.stdout.on('data', (d) => (out += d))
      p.on('exit', (c) => (c === 0 ? resolve(out) : reject(new Error(`pg_recvlogical exit ${c}`))))
    })
    const rawMs = performance.now() - r0
    const tm = [...timesOut.trim().split('\n')[1].matchAll(/(\d+)m([\d.]+)s/g)]
    const rawCpu = sec(tm[0]) + sec(tm[1])
    await db.query(`select pg_drop_replication_slot('bench_raw')`)
    const x = { rtMs, rtCpu, walCpu, clientCpu, rawMs, rawCpu, rt: ROWS / (rtMs / 1000), raw: ROWS / (rawMs / 1000) }
    log(`  kernel ${Math.round(x.rt)} rows/s (${rtMs.toFixed(0)} ms, ${((rtCpu * 1000) / ROWS).toFixed(1)} µs CPU per change), pg_recvlogical ${Math.round(x.raw)} rows/s (${rawMs.toFixed(0)} ms): ${(x.rt / x.raw).toFixed(2)}×`)
    return x
  }
  // pg_recvlogical's wall time includes starting it and connecting: timed alone (its slot's
  // end reached at once, nothing to decode), best of 3, to say how much of a round it is.
  const startMs = []
  for (let k = 0; k < 3; k++) {
    await db.query(`select pg_create_logical_replication_slot('bench_raw', 'pgoutput')`)
    const lsn = (await db.query('select pg_current_wal_lsn()::text as l')).rows[0].l
    const t0 = performance.now()
    await new Promise((resolve, reject) => {
      const p = spawn(path.join(pgBin(), 'pg_recvlogical'), recvArgs(lsn), { env: { ...process.env, PGPASSWORD: password }, stdio: 'ignore' })
      p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`pg_recvlogical exit ${c}`))))
    })
    startMs.push(performance.now() - t0)
    await db.query(`select pg_drop_replication_slot('bench_raw')`)
  }
  fig.recvStartMs = Math.min(...startMs)
  const cold = await tpRound()
  const counted = []
  for (let r = 0; r < TP_ROUNDS; r++) counted.push(await tpRound())
  sub.close()
  const mid = (xs, f) => [...xs].map(f).sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
  const rt = mid(counted, (x) => x.rt)
  const raw = mid(counted, (x) => x.raw)
  const rtCpu = mid(counted, (x) => x.rtCpu)
  const rawCpu = mid(counted, (x) => x.rawCpu)
  const walCpu = mid(counted, (x) => x.walCpu)
  const clientCpu = mid(counted, (x) => x.clientCpu)
  const ratios = counted.map((x) => (x.rt / x.raw).toFixed(2)).join(', ')
  // The stricter comparison: pg_recvlogical's rate without its start and connection (the
  // kernel's connection is up before the round), which the target is judged on.
  // Each round's kernel and pg_recvlogical legs run back to back, so the ratio is taken per
  // round (the machine's speed drifts between rounds) and its median is the figure.
  const netRate = (x) => ROWS / (Math.max(x.rawMs - fig.recvStartMs, 1) / 1000)
  const rawNet = mid(counted, netRate)
  const netRatios = counted.map((x) => (x.rt / netRate(x)).toFixed(2)).join(', ')
  fig.tpGross = mid(counted, (x) => x.rt / x.raw)
  fig.tp = mid(counted, (x) => x.rt / netRate(x))
  fig.tpCold = { rt: cold.rt, raw: cold.raw, cpu: cold.rtCpu }
  fig.cpuRatio = rtCpu / Math.max(rawCpu, 1)
  rows.push([`change throughput, one table, one subscriber (${ROWS} rows, one transaction; ${TP_ROUNDS} rounds after a first one, medians)`, `${Math.round(rt)} rows/s (commit → last row at the client, rounds ${counted.map((x) => x.rtMs.toFixed(0)).join(', ')} ms); the first transaction after the kernel starts (cold code): ${Math.round(cold.rt)} rows/s`, `pg_recvlogical, pgoutput: ${Math.round(raw)} rows/s (rounds ${counted.map((x) => x.rawMs.toFixed(0)).join(', ')} ms, each with ≈ ${fig.recvStartMs.toFixed(0)} ms of starting and connecting; first round ${Math.round(cold.raw)} rows/s)`, `${fig.tp.toFixed(2)}× pg_recvlogical's rate without its start (median of the rounds' ratios; its rate ${Math.round(rawNet)} rows/s; per round ${netRatios}); ${fig.tpGross.toFixed(2)}× with it (per round ${ratios}); first round ${(cold.rt / cold.raw).toFixed(2)}× with it`, '≥ 0.8×'])
  rows.push([`CPU per change, same rounds (kernel process vs pg_recvlogical process; the walsender's decoding is the same for both; medians)`, `${((rtCpu * 1000) / ROWS).toFixed(1)} µs (${rtCpu.toFixed(0)} ms for ${ROWS}; the receiving bench client used ${clientCpu.toFixed(0)} ms; first round ${((cold.rtCpu * 1000) / ROWS).toFixed(1)} µs)`, `${((rawCpu * 1000) / ROWS).toFixed(1)} µs (${rawCpu.toFixed(0)} ms)`, `${(rtCpu / Math.max(rawCpu, 1)).toFixed(1)}× the CPU`, ''])
  // The kernel's ceiling on a core of its own is 1 / its CPU per change (the walsender's
  // decoding, measured too, is a stage before it and much cheaper). Compared with
  // pg_recvlogical's wall-clock rate of the same rounds, itself slowed by the same load.
  const ceiling = ROWS / (rtCpu / 1000)
  rows.push([`kernel ceiling on a core of its own (1 / kernel CPU per change; walsender decoding ${((walCpu * 1000) / ROWS).toFixed(1)} µs per change before it)`, `${Math.round(ceiling)} rows/s`, `pg_recvlogical wall rate above: ${Math.round(raw)} rows/s`, `${(ceiling / raw).toFixed(2)}×`, '≥ 0.8×'])
}

// 3. commit → client latency at RATE changes/s to CLIENTS subscribers, in LAT_ROUNDS rounds
//    alternating three kernel configurations: the defaults (native writer, yielding the CPU
//    between flush slices), the same without the yield (realtime.yieldCpu false) and Node's
//    socket writes (realtime.nativeWrites false), the kernel restarted with the setting in its
//    environment. The CPU of this 2-core machine swings from minute to minute, so the table
//    gives each configuration's median round, with every round's p50.
/** One round of the latency part against the running kernel. */
async function latencyRound(traced) {
  // The subscribers live in a worker thread (bench/realtime-clients.mjs): their frame handling
  // then does not hold up this loop's inserts.
  const worker = new Worker(new URL('./realtime-clients.mjs', import.meta.url), {
    workerData: { url, token: superToken, count: CLIENTS, topics: 'lat', config: { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'bench' }] } },
  })
  await new Promise((resolve, reject) => {
    worker.once('error', reject)
    worker.once('message', (m) => (m.type === 'ready' ? resolve() : reject(new Error(String(m)))))
  })
  const kpid = kernelPid()
  await profileMark()
  if (traced) {
    // The kernel traces while the file exists (checked once a second), from fresh figures.
    writeFileSync(traceFile, '{}')
    await sleep(1500)
  }
  worker.postMessage('start')
  const cpu0 = cpuMs(kpid)
  const total = RATE * SECONDS
  // Inserts leave on schedule from 4 connections, each its own transaction, without waiting
  // for the previous commit (one connection waiting for each commit's WAL flush cannot
  // reach 500/s).
  const writers = await Promise.all([0, 1, 2, 3].map(async () => {
    const c = new pg.Client(conn)
    await c.connect()
    return c
  }))
  const inflight = []
  // MARK_FILE=<file>: the kernel's pid goes there as the inserts start (to attach perf to it).
  if (process.env.MARK_FILE) writeFileSync(process.env.MARK_FILE, String(kpid))
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    // pg sends one query at a time per connection: queue each behind its connection's last
    // (what pg's own queue did, without its deprecated concurrent client.query()).
    const w = i % writers.length
    inflight[w] = (inflight[w] ?? Promise.resolve()).then(() => writers[w].query('insert into bench (v) values ($1)', [i]))
  }
  await Promise.all(inflight)
  const sent = performance.now() - start
  await Promise.all(writers.map((c) => c.end()))
  await sleep(2000)
  const kcpu = cpuMs(kpid) - cpu0
  await profileMark()
  const { lat, received, loopLag } = await new Promise((resolve) => {
    worker.on('message', (m) => m.type === 'done' && resolve(m))
    worker.postMessage('stop')
  })
  const st = cli(['realtime', 'status'])
  let trace
  if (traced) {
    await sleep(1200)
    trace = JSON.parse(readFileSync(traceFile, 'utf8'))
    rmSync(traceFile, { force: true })
    log(`trace: ${JSON.stringify(trace)}; receivers' event-loop delay ${JSON.stringify(loopLag)}`)
  }
  const s = stats(lat)
  const usPerFrame = (kcpu * 1000) / Math.max(received, 1)
  return { s, samples: lat.length, st, trace, loopLag, kcpu, sent, total, received, usPerFrame, writer: st.writer }
}

/** Restarts the kernel with extra environment (Postgres keeps running; realtime reconnects). */
async function restartKernel(extra) {
  cli(['kernel', 'stop'])
  cli(['kernel', 'start'], extra)
  await waitStreaming()
}

if (part('latency')) {
  const ROUNDS = Number(process.env.LAT_ROUNDS ?? 5)
  // The kernel's configurations compared, each restarted with its environment and checked
  // through realtime status: the default, and the default with one setting off.
  const VARIANTS = {
    native: { env: {}, name: 'native socket writer, yielding the CPU between flush slices (the defaults)', ok: (w) => w?.native === true && w.yieldsCpu === true },
    noyield: { env: { MAGFLOCK_REALTIME__YIELD_CPU: 'false' }, name: 'native socket writer without the yield (realtime.yieldCpu false), rounds alternating with the above', ok: (w) => w?.native === true && w.yieldsCpu === false },
    node: { env: { MAGFLOCK_REALTIME__NATIVE_WRITES: 'false' }, name: 'Node socket writes (realtime.nativeWrites false; yielding), rounds alternating with the above', ok: (w) => w?.native === false && w.yieldsCpu === true },
  }
  // LAT_WRITERS=native: the default's rounds only (trials).
  const WRITERS = (process.env.LAT_WRITERS ?? 'native,noyield,node').split(',')
  const byWriter = { native: [], noyield: [], node: [] }
  fig.traced = {}
  // With TRACE=1 a traced round of the default and one without the yield come first and are not
  // counted: stamping every change per phase costs the kernel CPU of its own.
  for (let r = process.env.TRACE ? -1 : 0; r < ROUNDS; r++) {
    for (const w of r < 0 ? WRITERS.filter((x) => x !== 'node') : WRITERS) {
      await restartKernel(VARIANTS[w].env)
      log(`latency ${r < 0 ? 'traced round (not counted)' : `round ${r + 1}/${ROUNDS}`}, ${w}: ${CLIENTS} subscribers, ${RATE} changes/s for ${SECONDS} s`)
      const x = await latencyRound(r < 0)
      if (!VARIANTS[w].ok(x.writer)) throw new Error(`the kernel runs ${JSON.stringify(x.writer)}, not ${w}`)
      log(`  p50 ${x.s.p50.toFixed(2)} ms, p99 ${x.s.p99.toFixed(1)} ms, kernel ${x.usPerFrame.toFixed(2)} µs CPU per frame`)
      if (r < 0) {
        fig.traced[w] = x.trace
        if (w === 'native') {
          fig.trace = x.trace
          fig.loopLag = x.loopLag
          fig.traceLat = { p50: x.s.p50, p99: x.s.p99 }
        }
      } else byWriter[w].push(x)
    }
  }
  await restartKernel({})
  const median = (xs) => [...xs].sort((a, b) => a.s.p50 - b.s.p50)[Math.floor((xs.length - 1) / 2)]
  const nat = median(byWriter.native)
  const other = (w) => (byWriter[w].length ? median(byWriter[w]) : undefined)
  const nod = other('node')
  const noy = other('noyield')
  fig.loopLag ??= nat.loopLag
  const per = (xs) => xs.map((x) => x.s.p50.toFixed(1)).join(', ')
  const brief = (x, w) => x && { p50: x.s.p50, p99: x.s.p99, rounds: per(byWriter[w]), usPerFrame: x.usPerFrame }
  const wins = (w) => byWriter[w].filter((x, i) => byWriter.native[i] && byWriter.native[i].s.p50 < x.s.p50).length
  fig.lat = { p50: nat.s.p50, p99: nat.s.p99, send50: nat.st.commitToSend.p50Ms, send99: nat.st.commitToSend.p99Ms, cores: (nat.usPerFrame * RATE * CLIENTS) / 1e6, rate: nat.total / (nat.sent / 1000), rounds: per(byWriter.native), node: brief(nod, 'node'), noyield: brief(noy, 'noyield'), winsNode: wins('node'), winsNoyield: wins('noyield'), usPerFrame: nat.usPerFrame, n: ROUNDS }
  const row = (x, xs, name) => [
    `commit → client latency, ${Math.round(x.total / (x.sent / 1000))} changes/s to ${CLIENTS} subscribed clients, ${name} (median of ${ROUNDS} rounds by p50; ${x.samples} samples in it; receive time to the µs − commit_timestamp, ms resolution, + 0.5 ms)`,
    `p50 ${x.s.p50.toFixed(1)} ms, p99 ${x.s.p99.toFixed(1)} ms (p50 per round ${per(xs)}; kernel commit→send p50 ${x.st.commitToSend.p50Ms?.toFixed(1)} ms, p99 ${x.st.commitToSend.p99Ms?.toFixed(1)} ms)`,
    `${x.received} of ${x.total * CLIENTS} frames received in the round; kernel CPU ${x.kcpu.toFixed(0)} ms over ${((x.sent + 2000) / 1000).toFixed(1)} s = ${x.usPerFrame.toFixed(1)} µs per frame sent, so ${RATE} changes/s × ${CLIENTS} clients needs ${((x.usPerFrame * RATE * CLIENTS) / 1e6).toFixed(1)} cores of kernel alone`,
  ]
  rows.push([...row(nat, byWriter.native, VARIANTS.native.name), '', 'p50 < 5 ms, p99 < 50 ms'])
  if (noy) rows.push([...row(noy, byWriter.noyield, VARIANTS.noyield.name), `default ${(nat.s.p50 / noy.s.p50).toFixed(2)}× p50; lower in ${wins('noyield')} of ${byWriter.noyield.length} pairs`, 'p50 < 5 ms, p99 < 50 ms'])
  if (nod) rows.push([...row(nod, byWriter.node, VARIANTS.node.name), `native ${(nat.s.p50 / nod.s.p50).toFixed(2)}× p50; lower in ${wins('node')} of ${byWriter.node.length} pairs`, 'p50 < 5 ms, p99 < 50 ms'])
}

// 3b. The hub's fan-out alone (no Postgres, no kernel process): the built Hub behind a ws
//     server, fed RATE synthetic changes/s (commit time = the moment each is due) for CLIENTS
//     receivers in a worker, as the latency part; its flush in slices of 0.5 ms against the
//     same hub writing its whole queue in one turn (flushSliceMs: Infinity, the hub before
//     slices), rounds alternating in one run.
if (part('fanout')) {
  const ROUNDS = Number(process.env.FANOUT_ROUNDS ?? 3)
  const THREADS = Number(process.env.FANOUT_THREADS ?? 2)
  log(`fanout: ${CLIENTS} receivers, ${RATE} changes/s for ${SECONDS} s, ${ROUNDS} rounds of sliced vs whole-queue flushes vs ${THREADS} writer threads`)
  const hubUrl = new URL('../dist/realtime/hub.js', import.meta.url).href
  const { Hub } = await import(hubUrl)
  // The writer and the yield between slices, as the kernel uses them by default.
  const nativeWritesForHub = (await import(new URL('../dist/realtime/native.js', import.meta.url).href)).loadNativeWrites().writes
  const { WebSocketServer } = await import('ws')
  const rel = { oid: 1, schema: 'public', table: 'bench', replicaIdentity: 'd', primaryKey: ['id'], columns: [{ name: 'id', typeOid: 20, type: 'int8', key: true }, { name: 'v', typeOid: 23, type: 'int4', key: false }, { name: 'pad', typeOid: 25, type: 'text', key: false }] }
  /** One round: `flushSliceMs` for a hub in this thread, or `threads` writer threads (bench/realtime-writer.mjs). */
  const round = async ({ flushSliceMs, threads }) => {
    const port = await freePort()
    let hub
    let wss
    const writers = []
    if (threads) {
      for (let w = 0; w < threads; w++) {
        const writer = new Worker(new URL('./realtime-writer.mjs', import.meta.url), { workerData: { port, hubUrl } })
        await new Promise((resolve, reject) => {
          writer.once('error', reject)
          writer.once('message', resolve)
        })
        writers.push(writer)
      }
    } else {
      hub = new Hub({
        maxBufferedBytes: 8 << 20,
        maxChannelsPerClient: 10,
        publication: 'p',
        flushSliceMs,
        // The kernel's default writer (both rounds; the latency part compares the writers).
        nativeWrites: nativeWritesForHub,
        yieldCpu: nativeWritesForHub?.yieldCpu,
        verify: () => ({ ok: false, reason: 'malformed', message: 'unused' }),
        visibleBatch: async () => [],
        visibleGroupsCached: (_ch, groups) => new Set(groups.map((g) => g.key)),
        roleExists: async () => true,
        published: async () => true,
      })
      wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false })
      await new Promise((r) => wss.once('listening', r))
      wss.on('connection', (ws) => hub.attach(ws, '2.0.0', { role: 'postgres', exp: 2e9 }))
    }
    const worker = new Worker(new URL('./realtime-clients.mjs', import.meta.url), {
      workerData: { url: `ws://127.0.0.1:${port}/realtime/v1/websocket?vsn=2.0.0&apikey=`, token: 'x', count: CLIENTS, topics: 'lat', config: { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'bench' }] } },
    })
    await new Promise((resolve, reject) => {
      worker.once('error', reject)
      worker.once('message', (m) => (m.type === 'ready' ? resolve() : reject(new Error(String(m)))))
    })
    const status = () => Promise.all(writers.map((w) => new Promise((resolve) => {
      const on = (m) => {
        if (m.type !== 'status') return
        w.off('message', on)
        resolve(m)
      }
      w.on('message', on)
      w.postMessage({ type: 'status' })
    })))
    const split = (await status()).map((m) => m.clients)
    const wcpu0 = await status()
    worker.postMessage('start')
    const c0 = process.cpuUsage()
    const t0 = process.threadCpuUsage()
    const w0 = hub?.taken ?? 0
    const total = RATE * SECONDS
    const start = Date.now()
    let i = 0
    // Every change due by now is handed over at once (as the replication socket's backlog is
    // read in one turn when the kernel was busy); with writer threads, posted to each of them.
    await new Promise((done) => {
      const tick = () => {
        const now = Date.now()
        const batch = []
        for (; i < total && start + (i * 1000) / RATE <= now; i++) {
          if (hub) hub.deliver({ type: 'INSERT', relation: rel, record: { id: String(i), v: String(i), pad: null }, oldRecord: null, commitTime: start + (i * 1000) / RATE })
          else batch.push(i, start + (i * 1000) / RATE)
        }
        if (batch.length > 0) for (const w of writers) w.postMessage({ type: 'changes', changes: batch })
        if (i < total) setTimeout(tick, 0)
        else done()
      }
      tick()
    })
    await sleep(1500)
    const cu = process.cpuUsage(c0)
    const tu = process.threadCpuUsage(t0)
    // The hub's socket writes in the round (its count of clients taken off the queue) and the
    // writing thread's CPU per write: the figure the floor part measures for raw writes.
    const writes = hub ? hub.taken - w0 : 0
    const wcpu = (await status()).map((m, k) => (m.cpu.user + m.cpu.system - wcpu0[k].cpu.user - wcpu0[k].cpu.system) / 1000)
    const { lat, received, loopLag } = await new Promise((resolve) => {
      worker.on('message', (m) => m.type === 'done' && resolve(m))
      worker.postMessage('stop')
    })
    if (hub) {
      hub.closeAll(1001, 'bench done')
      await new Promise((r) => wss.close(r))
    }
    for (const w of writers) {
      await new Promise((resolve) => {
        w.on('message', (m) => m.type === 'closed' && resolve())
        w.postMessage({ type: 'close' })
      })
      await w.terminate()
    }
    const r = { s: stats(lat), n: lat.length, received, cpuUs: ((cu.user + cu.system) / Math.max(received, 1)), split, wcpu, writes, usPerWrite: writes > 0 ? (tu.user + tu.system) / writes : NaN, loopLag }
    log(`fanout round ${threads ? `${threads} threads (clients ${split.join('+')}, writer CPU ms ${wcpu.map((x) => x.toFixed(0)).join('+')})` : flushSliceMs === Infinity ? 'whole' : `sliced ${flushSliceMs ?? 0.5} ms`}: p50 ${r.s.p50.toFixed(1)} p99 ${r.s.p99.toFixed(1)} ms, ${received} frames, ${r.cpuUs.toFixed(2)} µs CPU/frame${writes ? `, ${writes} socket writes (${(received / writes).toFixed(1)} frames each), ${r.usPerWrite.toFixed(1)} µs of the hub thread's CPU per write` : ''}; receivers' event-loop delay p50 ${loopLag.p50.toFixed(1)} p99 ${loopLag.p99.toFixed(1)} ms`)
    return r
  }
  const sliced = []
  const whole = []
  const threaded = []
  for (let r = 0; r < ROUNDS; r++) {
    sliced.push(await round({ flushSliceMs: process.env.FANOUT_SLICE_MS ? Number(process.env.FANOUT_SLICE_MS) : undefined }))
    if (THREADS > 1) threaded.push(await round({ threads: THREADS }))
    whole.push(await round({ flushSliceMs: Infinity }))
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const show = (rs) => `p50 ${med(rs.map((x) => x.s.p50)).toFixed(1)} ms, p99 ${med(rs.map((x) => x.s.p99)).toFixed(1)} ms (median of ${rs.length} rounds; p50 per round ${rs.map((x) => x.s.p50.toFixed(1)).join(', ')}); ${med(rs.map((x) => x.cpuUs)).toFixed(1)} µs CPU per frame (hub and receivers: one process)`
  fig.fanout = { sliced: med(sliced.map((x) => x.s.p50)), whole: med(whole.map((x) => x.s.p50)), cpuSliced: med(sliced.map((x) => x.cpuUs)), cpuWhole: med(whole.map((x) => x.cpuUs)), usPerWrite: med(sliced.map((x) => x.usPerWrite)), framesPerWrite: med(sliced.map((x) => x.received / x.writes)) }
  rows.push([`fan-out alone (the hub in this process, no Postgres): ${RATE} changes/s to ${CLIENTS} clients, commit → client`, `flush in slices of 0.5 ms: ${show(sliced)}`, `whole queue per turn (the hub before slices): ${show(whole)}`, `${(fig.fanout.sliced / Math.max(fig.fanout.whole, 1)).toFixed(2)}× p50`, 'p50 < 5 ms, p99 < 50 ms'])
  if (threaded.length > 0) {
    fig.fanout.threads = THREADS
    fig.fanout.threaded = med(threaded.map((x) => x.s.p50))
    fig.fanout.cpuThreaded = med(threaded.map((x) => x.cpuUs))
    fig.fanout.split = threaded.map((x) => x.split.join('+')).join(', ')
    fig.fanout.threadRounds = threaded.map((x) => x.s.p50.toFixed(1)).join(', ')
    fig.fanout.slicedRounds = sliced.map((x) => x.s.p50.toFixed(1)).join(', ')
    rows.push([`fan-out alone, ${THREADS} writer threads (prototype: a hub per thread, each listening on the port with SO_REUSEPORT and writing its own sockets; every change posted to each), commit → client`, `${show(threaded)}; clients per thread ${fig.fanout.split}`, `one thread, slices of 0.5 ms (same run): ${show(sliced)}`, `${(fig.fanout.threaded / Math.max(fig.fanout.sliced, 1)).toFixed(2)}× p50`, 'p50 < 5 ms, p99 < 50 ms'])
  }
}

// 3b'. The hub's own CPU per frame, without sockets: CLIENTS fake WebSockets whose socket
//      write only counts (no syscall), joined to 50 topics as in the latency part; RATE-sized
//      bursts of changes delivered 5 per turn (≈ frames per socket write in the latency part)
//      and flushed. What the hub adds per frame to the kernel's socket writes (floor part).
if (part('hubcpu')) {
  const { Hub } = await import('../dist/realtime/hub.js')
  const { EventEmitter } = await import('node:events')
  const rel = { oid: 1, schema: 'public', table: 'bench', replicaIdentity: 'd', primaryKey: ['id'], columns: [{ name: 'id', typeOid: 20, type: 'int8', key: true }, { name: 'v', typeOid: 23, type: 'int4', key: false }, { name: 'pad', typeOid: 25, type: 'text', key: false }] }
  const hub = new Hub({ maxBufferedBytes: 8 << 20, maxChannelsPerClient: 10, publication: 'p', verify: () => ({ ok: false, reason: 'malformed', message: 'unused' }), visibleBatch: async () => [], visibleGroupsCached: (_c, g) => new Set(g.map((x) => x.key)), roleExists: async () => true, published: async () => true })
  let writes = 0
  class FakeWs extends EventEmitter {
    OPEN = 1
    readyState = 1
    bufferedAmount = 0
    _socket = { write: () => ++writes > 0 }
    close() {}
    terminate() {}
  }
  const join = Buffer.from(JSON.stringify(['1', '1', 'realtime:lat0', 'phx_join', { config: { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'bench' }] } }]))
  for (let i = 0; i < CLIENTS; i++) {
    const ws = new FakeWs()
    hub.attach(ws, '2.0.0', { role: 'postgres', exp: 2e9 })
    ws.emit('message', i % 50 === 0 ? join : Buffer.from(join.toString().replace('lat0', `lat${i % 50}`)), false)
  }
  await sleep(100)
  const PER = 5
  const perFrame = []
  for (let r = 0; r < 5; r++) {
    writes = 0
    const t0 = process.threadCpuUsage()
    for (let i = 0; i < RATE * SECONDS; i += PER) {
      for (let k = 0; k < PER; k++) hub.deliver({ type: 'INSERT', relation: rel, record: { id: String(i + k), v: String(i), pad: null }, oldRecord: null, commitTime: Date.now() })
      await new Promise((res) => setImmediate(res))
      await new Promise((res) => setImmediate(res))
    }
    const cu = process.threadCpuUsage(t0)
    if (r > 0) perFrame.push((cu.user + cu.system) / (RATE * SECONDS * CLIENTS))
  }
  hub.closeAll(1001, 'bench done')
  const us = [...perFrame].sort((a, b) => a - b)[Math.floor(perFrame.length / 2)]
  fig.hubcpu = { us, perWrite: us * PER }
  rows.push([`the hub's own CPU per frame (${CLIENTS} clients whose socket write costs nothing, ${PER} changes per write; median of ${perFrame.length} runs)`, `${us.toFixed(2)} µs per frame, ${(us * PER).toFixed(2)} µs per socket write of ${PER} frames`, '', '', 'explains the p50'])
}

// 3c. The floor under the latency part: one loopback TCP write per client per pass, with no
//     WebSocket, no hub and no Postgres. CLIENTS plain sockets whose far ends a worker thread
//     reads (as the latency part's receivers do); the main thread writes a frame-sized buffer
//     to each in turn, PASSES times. A change that reaches a writer going round the clients
//     waits for its turn at each of them: on average half a pass, whatever the writer does.
if (part('floor')) {
  const PASSES = Number(process.env.FLOOR_PASSES ?? 200)
  const net = await import('node:net')
  const server = net.createServer()
  const socks = []
  const port = await freePort()
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  server.on('connection', (c) => {
    c.setNoDelay(true)
    socks.push(c)
  })
  const receivers = `const net = require('node:net'); const { parentPort, workerData } = require('node:worker_threads')
     const all = []; let n = 0
     for (let i = 0; i < workerData.count; i++) { const c = net.connect(workerData.port, '127.0.0.1', () => { if (++n === workerData.count) parentPort.postMessage('ready') }); c.on('data', () => undefined); all.push(c) }
     parentPort.on('message', () => { for (const c of all) c.destroy(); parentPort.postMessage('closed') })`
  const worker = new Worker(receivers, { eval: true, workerData: { port, count: CLIENTS } })
  await new Promise((r) => worker.once('message', r))
  while (socks.length < CLIENTS) await sleep(10)
  const BYTES = Number(process.env.FLOOR_BYTES ?? 300)
  const frame = Buffer.alloc(BYTES, 97)
  // Two writers: Node's (socket.write each) and the kernel's native writer (writeMany, 16
  // sockets a call, as the hub's flush slices hand them over).
  const { writes: nativeWrites } = (await import(new URL('../dist/realtime/native.js', import.meta.url).href)).loadNativeWrites()
  if (!nativeWrites) throw new Error('the native writer is not built (npm run build)')
  const fds = Int32Array.from(socks.map((c) => c._handle.fd))
  const out = new Int32Array(16)
  const frames = new Array(16).fill(frame)
  const passes = async (native) => {
    const passMs = []
    const t0 = process.threadCpuUsage()
    for (let p = 0; p < PASSES; p++) {
      const a = performance.now()
      if (native) {
        for (let i = 0; i < CLIENTS; i += 16) {
          const n = Math.min(16, CLIENTS - i)
          nativeWrites.writeMany(fds.subarray(i, i + n), frames, n, out)
          for (let j = 0; j < n; j++) if (out[j] !== frame.length) throw new Error(`native floor: send answered ${out[j]}`)
        }
      } else for (const c of socks) c.write(frame)
      passMs.push(performance.now() - a)
      await new Promise((r) => setImmediate(r))
    }
    const cu = process.threadCpuUsage(t0)
    return { usPerWrite: (cu.user + cu.system) / (PASSES * CLIENTS), pass: stats(passMs) }
  }
  // Alternating, twice each; the median pass of each writer is kept.
  const runs = { native: [], node: [] }
  for (let r = 0; r < 2; r++) for (const w of ['native', 'node']) runs[w].push(await passes(w === 'native'))
  const pick = (xs) => [...xs].sort((a, b) => a.pass.p50 - b.pass.p50)[0]
  const { usPerWrite, pass } = pick(runs.native)
  const nodeFloor = pick(runs.node)
  // The same passes while Postgres takes the latency part's inserts (RATE/s from 4 pgbench
  // connections, each its own transaction and WAL flush; the kernel decodes them, with no
  // subscriber to send them to): what the rest of that part's load does to the raw writes.
  const script = path.join(dir, 'insert.sql')
  writeFileSync(script, 'insert into bench (v) values (1);\n')
  const load = spawn(path.join(pgBin(), 'pgbench'), ['-n', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-c', '4', '-R', String(RATE), '-T', '60', '-f', script, 'postgres'], { env: { ...process.env, PGPASSWORD: password }, stdio: 'ignore' })
  await sleep(500)
  const loaded = await passes(true)
  load.kill('SIGINT')
  await new Promise((r) => load.once('exit', r))
  fig.floorLoaded = { usPerWrite: loaded.usPerWrite, passP50: loaded.pass.p50 }
  worker.postMessage('close')
  await new Promise((r) => worker.once('message', r))
  await worker.terminate()
  for (const c of socks) c.destroy()
  await new Promise((r) => server.close(r))
  fig.floor = { usPerWrite, passP50: pass.p50, node: { usPerWrite: nodeFloor.usPerWrite, passP50: nodeFloor.pass.p50 } }
  rows.push([`floor: one loopback TCP write of ${BYTES} bytes to each of ${CLIENTS} sockets per pass with the native writer, 16 sockets a call (no WebSocket, no hub, no Postgres; receivers in a worker thread), ${PASSES} passes; best of 2, alternating with Node's writes`, `${usPerWrite.toFixed(1)} µs of the writing thread's CPU per write; a pass takes p50 ${pass.p50.toFixed(1)} ms, so a change waits ≈ ${(pass.p50 / 2).toFixed(1)} ms on average for its turn`, `the same writes through Node (socket.write): ${nodeFloor.usPerWrite.toFixed(1)} µs per write, pass ${nodeFloor.pass.p50.toFixed(1)} ms`, `${(pass.p50 / nodeFloor.pass.p50).toFixed(2)}× the pass`, 'explains the p50'])
  rows.push([`floor (native writer) while Postgres takes ${RATE} inserts/s (pgbench, 4 connections; the kernel decodes them, no subscriber)`, `${loaded.usPerWrite.toFixed(1)} µs per write; a pass takes p50 ${loaded.pass.p50.toFixed(1)} ms, so a change waits ≈ ${(loaded.pass.p50 / 2).toFixed(1)} ms on average for its turn`, `idle Postgres (above): ${usPerWrite.toFixed(1)} µs, pass ${pass.p50.toFixed(1)} ms`, `${(loaded.pass.p50 / pass.p50).toFixed(2)}× the pass`, 'explains the p50'])

  // The same floor with FLOOR_THREADS writer threads, each accepting (SO_REUSEPORT) and writing
  // its own share of the sockets, all writing at once: does the pass shrink on this machine?
  const THREADS = Number(process.env.FLOOR_THREADS ?? 2)
  if (THREADS > 1) {
    const port2 = await freePort()
    const writerCode = `const net = require('node:net'); const { parentPort, workerData } = require('node:worker_threads'); const { performance } = require('node:perf_hooks')
     const socks = []
     const server = net.createServer((c) => { c.setNoDelay(true); socks.push(c) })
     server.listen({ port: workerData.port, host: '127.0.0.1', reusePort: true }, () => parentPort.postMessage({ type: 'listening' }))
     parentPort.on('message', async (m) => {
       if (m === 'count') parentPort.postMessage({ type: 'count', n: socks.length })
       else if (m === 'go') {
         const frame = Buffer.alloc(workerData.bytes, 97); const passMs = []; const t0 = process.threadCpuUsage()
         for (let p = 0; p < workerData.passes; p++) { const a = performance.now(); for (const c of socks) c.write(frame); passMs.push(performance.now() - a); await new Promise((r) => setImmediate(r)) }
         const cu = process.threadCpuUsage(t0)
         parentPort.postMessage({ type: 'done', passMs, cpuUs: cu.user + cu.system, writes: workerData.passes * socks.length })
       } else if (m === 'close') { for (const c of socks) c.destroy(); server.close(() => parentPort.postMessage({ type: 'closed' })) }
     })`
    const ask = (w, msg, type) =>
      new Promise((resolve) => {
        const on = (m) => {
          if (m.type !== type) return
          w.off('message', on)
          resolve(m)
        }
        w.on('message', on)
        if (msg !== undefined) w.postMessage(msg)
      })
    const writers = []
    for (let k = 0; k < THREADS; k++) {
      const w = new Worker(writerCode, { eval: true, workerData: { port: port2, bytes: BYTES, passes: PASSES } })
      await ask(w, undefined, 'listening')
      writers.push(w)
    }
    const recv = new Worker(receivers, { eval: true, workerData: { port: port2, count: CLIENTS } })
    await new Promise((r) => recv.once('message', r))
    let split = []
    for (const until = Date.now() + 30_000; Date.now() < until; await sleep(10)) {
      split = (await Promise.all(writers.map((w) => ask(w, 'count', 'count')))).map((m) => m.n)
      if (split.reduce((a, b) => a + b, 0) >= CLIENTS) break
    }
    const done = await Promise.all(writers.map((w) => ask(w, 'go', 'done')))
    recv.postMessage('close')
    await new Promise((r) => recv.once('message', r))
    await recv.terminate()
    for (const w of writers) {
      await ask(w, 'close', 'closed')
      await w.terminate()
    }
    const passes = done.map((d) => stats(d.passMs).p50)
    const us = done.reduce((a, d) => a + d.cpuUs, 0) / done.reduce((a, d) => a + d.writes, 0)
    const slowest = Math.max(...passes)
    fig.floorThreads = { threads: THREADS, passP50: slowest, usPerWrite: us, split: split.join('+') }
    rows.push([`floor with ${THREADS} writer threads (each accepts its share of the ${CLIENTS} sockets with SO_REUSEPORT and writes them, all at once; same receivers), ${PASSES} passes`, `${us.toFixed(1)} µs of CPU per write; a thread's pass takes p50 ${passes.map((x) => x.toFixed(1)).join(' / ')} ms (sockets ${split.join(' / ')}), so a change waits ≈ ${(slowest / 2).toFixed(1)} ms on average`, `one writer thread (above): pass p50 ${pass.p50.toFixed(1)} ms`, `${(slowest / Math.max(pass.p50, 0.001)).toFixed(2)}× the pass`, 'explains the p50'])
  }
}

// 4. Broadcast to CLIENTS clients.
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
  fig.rls = { p50: rls.s.p50, open: open.s.p50 }
  rows.push([`RLS-checked delivery, ${GROUPS} distinct role+claims groups (${N} changes, every group may see every row)`, `p50 ${rls.s.p50} ms, p99 ${rls.s.p99} ms (${rls.n} deliveries)`, `same table without RLS: p50 ${open.s.p50} ms, p99 ${open.s.p99} ms (${open.n})`, `${(rls.s.p50 / Math.max(open.s.p50, 1)).toFixed(1)}× p50`, 'report'])
}

await db.end()
teardown()
const loadEnd = os.loadavg()
/** The latency part's per-phase breakdown (TRACE=1; src/realtime/trace.ts), as a table. */
const f2 = (x) => (x === null || x === undefined ? '–' : Number(x).toFixed(1))
const f2h = (x) => (x === null || x === undefined ? '–' : Number(x).toFixed(2))
/** From the trace: µs per socket write in a flush slice; socket writes per change. */
const usPerWrite = fig.trace ? (fig.trace.phases.flush_writes.p50 * 1000) / Math.max(1, fig.trace.clientsPerFlush ?? 1) : 0
const writesPerChange = fig.trace ? (fig.trace.flushes * (fig.trace.clientsPerFlush ?? 0)) / Math.max(1, fig.trace.phases.commit_to_written.n) : 0
const phaseRows = fig.trace
  ? [
      ['commit → walsender sends (WAL flush, walsender wakeup and decoding)', 'commit_to_walsend'],
      ['walsender sends → kernel handles the message (socket, kernel busy with earlier work)', 'walsend_to_recv'],
      ['kernel: decode, match, build frames, queue', 'recv_to_queued'],
      ['queued → written to its last recipient (the hub writes its queue of clients in slices of ≤ 0.5 ms)', 'queued_to_written'],
      [`flush slice: ${(fig.trace.clientsPerFlush ?? 0).toFixed(0)} sockets written per slice; ${fig.trace.flushes} slices, ${writesPerChange.toFixed(0)} socket writes per change for ${CLIENTS} clients`, 'flush_writes'],
      ['commit → last socket written (kernel side, end to end)', 'commit_to_written'],
    ].map(([what, k]) => [what, f2(fig.trace.phases[k].p50), f2(fig.trace.phases[k].p99)])
  : []
if (fig.trace) {
  // monitorEventLoopDelay({ resolution: 1 }) reports the 1 ms sampling timer's whole interval (an idle loop reads ≈ 1.05–1.08 ms): shown here beyond it.
  phaseRows.push(['kernel event-loop delay (beyond its 1 ms sampling timer)', f2(Math.max(0, fig.trace.eventLoopDelayMs.p50 - 1)), f2(Math.max(0, fig.trace.eventLoopDelayMs.p99 - 1))])
  phaseRows.push([`kernel GC pauses (${fig.trace.gc.count}, ${f2(fig.trace.gc.totalMs)} ms in all; max ${f2(fig.trace.gc.maxMs)})`, '', f2(fig.trace.gc.p99Ms)])
}
if (fig.loopLag) phaseRows.push(['receivers\' event-loop delay (1,000 sockets in one worker thread; beyond the 1 ms sampling timer)', f2(Math.max(0, fig.loopLag.p50 - 1)), f2(Math.max(0, fig.loopLag.p99 - 1))])
if (fig.traceLat) phaseRows.push(['commit → client receives (this traced round; the table gives the median of the rounds without tracing)', f2(fig.traceLat.p50), f2(fig.traceLat.p99)])
// A bound for p50 on this host from this run's own figures (see "Where p50 < 5 ms stands").
const bound = (() => {
  if (!fig.fanout || !fig.trace || !fig.floor) return undefined
  // The receivers' CPU per write: the fan-out process's CPU per write less the hub thread's.
  const readUs = fig.fanout.cpuSliced * fig.fanout.framesPerWrite - fig.fanout.usPerWrite
  // The raw write as the latency part's writes meet it: with Postgres taking the inserts.
  const writeUs = fig.floorLoaded?.usPerWrite ?? fig.floor.usPerWrite
  const perWrite = writeUs + readUs
  const passCpu = (CLIENTS * perWrite) / 1000
  const ph = fig.trace.phases
  const decode = ph.commit_to_walsend.p50 + ph.walsend_to_recv.p50
  const recv = Math.max(0, (fig.loopLag?.p50 ?? 1) - 1) // beyond the 1 ms sampling timer
  return { writeUs, readUs, perWrite, passCpu, passMin: passCpu / 2, decode, p50: passCpu / 4 + decode, recv, total: passCpu / 4 + decode + recv }
})()
const md = `## Realtime (issue 14, \`bench/realtime.mjs\`)

\`npm run build && ${process.env.TRACE ? 'TRACE=1 ' : ''}node_modules/.bin/node bench/realtime.mjs\` — ${machine()}. One kernel process
(the built CLI), PostgreSQL 15; subscribers speak realtime-js's vsn 2.0.0 frames: raw \`ws\`
clients, except the latency part's 1,000, minimal WebSocket clients on plain sockets in a
worker thread of the bench (bench/realtime-clients.mjs), so their frame handling neither holds
up its insert loop nor outweighs the kernel's. Latencies are receive time minus the change's
\`commit_timestamp\` (same host clock). \`commit_timestamp\` has millisecond resolution, as Supabase
sends it; the latency part takes its receive time to the µs and the commit at the middle of its
millisecond (±0.5 ms a sample, no bias; before this the receive time was truncated to the ms too
and percentiles were whole milliseconds). **Load**: \`uptime\` load average
${loadStart.map((x) => x.toFixed(1)).join(', ')} at the start and ${loadEnd.map((x) => x.toFixed(1)).join(', ')} at the end, on 2
cores shared with other work: wall-clock figures are inflated several-fold; the CPU figures
(kernel CPU per change / per frame, from /proc) are the steadier ones.

${table(['what', 'MagFlock', 'baseline (same run)', 'ratio', 'target'], rows)}

Reading it:

- **Throughput** (target ≥ 0.8× pg_recvlogical: ${fig.tp === undefined ? 'not run' : fig.tp >= 0.8 ? `**met** in this run (${fig.tp.toFixed(2)}×)` : `**not met** in this run (${fig.tp.toFixed(2)}×)`}).
  Rounds: the kernel's first transaction after it starts runs its code cold (V8 compiles the
  decoder, the hub and the frame building while the rows stream; pg_recvlogical is C), so the
  first round is reported apart${fig.tpCold ? ` (${Math.round(fig.tpCold.rt)} rows/s, ${((fig.tpCold.cpu * 1000) / ROWS).toFixed(1)} µs of kernel CPU per change, against ${Math.round(fig.tpCold.raw)} for pg_recvlogical)` : ''} and
  the ceiling is taken over the rounds after it, as a running kernel streams (each round's
  two legs run back to back; the median of the rounds' ratios is the figure). Until
  2026-12-05 the bench measured that first transaction only. pg_recvlogical's time includes
  starting the program and connecting (${fig.recvStartMs === undefined ? '–' : fig.recvStartMs.toFixed(0)} ms, timed alone with nothing to decode), where the
  kernel's connection is up before a round: the target is judged against its rate without that
  (the stricter figure; the ratio with it is in the row too). The ratio also moves with the
  machine: the baseline is Postgres's C code end to end. From the machine of 2026-12-04 to the
  one of 2026-12-05 (Linux 6.18, a raw loopback socket write 2.3 µs instead of 4.4 µs in the
  floor part) pg_recvlogical went from 131,000–135,000 to 233,000–310,000 rows/s, while the
  kernel's first transaction stayed at 7.3–8.7 µs of CPU per change (0.88–0.92× then, 0.37–0.58×
  on 2026-12-05, first transaction only). Since then the RLS shortcut's answer is kept per set
  of groups (src/realtime/rls.ts) instead of worked out per change: in alternating builds the
  kernel's median warm round went from 127 and 130 ms to 114 and 115 ms. Later on 2026-12-05
  (kernel CPU now read from each thread's schedstat, in ns, instead of 10 ms ticks), warm
  kernel CPU per change went from 3.0–3.3 µs to 1.7–1.8 µs: a change that one feed gets is
  encoded straight into that feed's log (no buffer of its own, no joined frame, no second copy);
  a subscriber is written from a full chunk of the log as the next one starts (before, at 64
  KiB pending, which spanned two chunks and was joined with \`Buffer.concat\`: 6–11 % of the
  profiles); the JSON before a change's rows is kept per transaction and event type; int8
  values of up to 15 characters are copied; an unused \`performance.now()\` per change is
  gone. Tried and reverted: sending what queued behind the first (cold) visibility check from
  cache as soon as the check filled it. It took 10–20 % off the first round but left the heap
  sized so that the warm rounds cost 2.5–2.9 µs per change instead of 1.9–2.0 (scavenges of
  5–8 ms over 60–90 MB instead of 0.5 ms over 25–40 MB, \`--trace-gc\`).
  Profiled with \`node --cpu-prof\` on the kernel under this bench
  (\`PROFILE_DIR=… NODE_OPTIONS=--import=…/bench/cpu-prof-hook.mjs\`, summarized by
  \`bench/cpu-prof-top.mjs\`) and cut: row messages are taken off pg-logical-replication's
  per-message path (an LSN string, an event and a promise per row) straight into the decoder;
  the change's JSON is encoded to bytes once and each frame is a cached prefix + those bytes +
  a suffix (it was re-encoded as a string per distinct frame, with a string key per
  subscriber); the delivery metrics are observed once per transaction instead of per change.
  In profiles of the throughput part (60,000 changes) the hub's frame building and queueing
  (\`send_\`) fell from ≈ 709 ms to ≈ 196 ms. The kernel spends
  ${fig.cpuRatio === undefined ? '–' : fig.cpuRatio.toFixed(1)}× pg_recvlogical's CPU per change here (it decodes every row to text,
  builds JSON and writes WebSocket frames of about 350 bytes, where pg_recvlogical copies the
  binary messages to a file), so
  on a machine where other work takes most of the CPU the wall-time ratio falls with the
  kernel's share of a core (before these changes: 0.26× at a load of 16–18, 0.73× at a load
  of 2; after them, trial runs of this part gave 0.37× at a load of 16 and 0.89× at about 12). The "kernel ceiling" row is the rate with a core to
  itself.
- **Latency at 500 changes/s × 1,000 clients** (p50 < 5 ms, p99 < 50 ms: ${fig.lat === undefined ? 'not run' : fig.lat.p50 < 5 && fig.lat.p99 < 50 ? '**met**' : '**not met** on this shared machine'}).
  Every change is a frame to each of 1,000 sockets: 500,000 frames/s. The bench now
  produces the rate (inserts from 4 connections; one connection waiting for each commit
  reached 147–270/s) and its subscribers are raw sockets that only walk frame headers (one
  in ten decodes), so the load is the kernel's. In the kernel, clients of one topic share one
  prebuilt frame and clients sent the same frames in a turn share one concatenated buffer
  (before: a \`Buffer.concat\` per client per turn, about a quarter of the kernel's profile
  at this load), and who receives a relation's changes is computed once per subscription change, not
  per change. What remains is the socket writes, one per client per pass over the queue of
  clients (the \`send\` syscalls: with the native writer, Linux's own code is ≈ 76 % of the kernel
  process's CPU in a \`perf\` profile of this part, the TCP path to the receiver's socket and its
  wake-up; see below): ${fig.lat === undefined ? '' : `the kernel's commit → send p50 was ${fig.lat.send50?.toFixed(0)} ms (p99 ${fig.lat.send99?.toFixed(0)} ms), the run's kernel CPU per frame × 500,000 frames/s is ${fig.lat.cores.toFixed(1)} cores, `}and the
  1,000 receivers, Postgres and the insert loop share the same 2 cores with the other work
  on the machine (the load average above): the kernel gets a fraction of a core,
  so changes queue in it (its own commit → send figure above) and frames queue again in the
  receivers. Before these changes the kernel's own commit → send p50 in this part was 1.6 s
  at 147 changes/s and 1.9–2.4 s at 500/s, at loads of 12–16.${fig.lat?.node ? `
  **The native writer** (docs/realtime.md, "Native socket writes"): the flush hands 16 sockets at
  a time to one call of a Node-API addon that \`send\`s each its bytes, where Node's writer makes a
  call into Node's stream and libuv layers per socket. ${fig.lat.n} rounds of each, alternating (the
  kernel restarted between them with \`MAGFLOCK_REALTIME__NATIVE_WRITES=false\` or without it;
  \`realtime status\` checked to name the writer): p50 ${fig.lat.p50.toFixed(1)} ms (rounds ${fig.lat.rounds}) against ${fig.lat.node.p50.toFixed(1)} ms (rounds ${fig.lat.node.rounds}),
  kernel CPU per frame ${fig.lat.usPerFrame.toFixed(2)} against ${fig.lat.node.usPerFrame.toFixed(2)} µs. At this load the kernel's thread is busy all the time with
  either writer: what the native writer saves per write goes into more, smaller writes (shorter
  passes over the subscribers), so a change waits less for a subscriber's turn.` : ''}${fig.lat?.noyield ? `
  **Yielding between slices** (docs/realtime.md, "Yielding between slices"): when a flush slice
  ends with writes pending, the kernel calls \`sched_yield\` before the next, so threads already
  runnable on its core (Postgres's walsender and the committing backends here) run first
  instead of waiting for the scheduler to preempt a pass that takes milliseconds. ${fig.lat.n} rounds
  of each, alternating (the kernel restarted with \`MAGFLOCK_REALTIME__YIELD_CPU=false\` or without
  it; \`realtime status\` checked): p50 ${fig.lat.p50.toFixed(1)} ms (rounds ${fig.lat.rounds}) against ${fig.lat.noyield.p50.toFixed(1)} ms without the yield
  (rounds ${fig.lat.noyield.rounds}); lower in ${fig.lat.winsNoyield} of ${fig.lat.n} pairs; p99 ${fig.lat.p99.toFixed(1)} against ${fig.lat.noyield.p99.toFixed(1)} ms.${fig.traced?.native && fig.traced?.noyield ? ` In the traced
  rounds the time from commit to the walsender's send was p50 ${f2h(fig.traced.native.phases.commit_to_walsend.p50)} ms with the yield and
  ${f2h(fig.traced.noyield.phases.commit_to_walsend.p50)} ms without (walsender → kernel ${f2h(fig.traced.native.phases.walsend_to_recv.p50)} against ${f2h(fig.traced.noyield.phases.walsend_to_recv.p50)} ms): that is where it acts.` : ''}` : ''}${fig.lat ? `
  **How much of this is the machine**: without the yield, this part gave p50 5.8–6.1 ms on the
  machine of 2026-12-04 (medians of that day's runs) and 4.4–5.1 ms on the machine of 2026-12-05
  (medians of 7 runs; single rounds 4.2–6.1 ms), where Linux 6.18's raw loopback socket write
  costs 2.3 µs instead of 4.4 µs (floor part). With the yield the runs of 2026-12-05 gave 4.0–4.7 ms
  (rounds 3.9–5.2 ms); the yield's own share is the alternating pairs above.` : ''}
${phaseRows.length ? `  Where the time goes, per phase, in a traced round before the counted ones (\`TRACE=1\`: the
  kernel stamps each change, see src/realtime/trace.ts, which costs CPU of its own; ms):

${table(['phase', 'p50', 'p99'], phaseRows).replace(/^/gm, '  ')}
${fig.trace && fig.lat ? `
  Nothing on the path waits on a timer (a change's frames are queued in the turn that decoded
  it and the next flush slice writes them; Nagle is off on the replication connection and every
  WebSocket; the RLS visibility wait is skipped for rows that need no per-row check; the bench's
  writes use the default \`synchronous_commit = on\`, so the walsender is woken by the commit's
  own WAL flush: commit → walsender ${f2(fig.trace.phases.commit_to_walsend.p50)} ms p50). The time is the socket writes: a slice wrote
  ${(fig.trace.clientsPerFlush ?? 0).toFixed(0)} sockets in ${f2(fig.trace.phases.flush_writes.p50)} ms p50 here, ${usPerWrite.toFixed(1)} µs per socket (on loopback TCP the sender's
  syscall also runs the receiver's TCP input; the size of the write hardly matters), so one pass
  over the ${CLIENTS} subscribers takes about ${((usPerWrite * CLIENTS) / 1000).toFixed(1)} ms (this round: native writer). The hub writes its queue of clients in slices
  of ≤ 0.5 ms and decodes what arrived in between: a new change joins the write of every client
  not yet written in the pass under way (${writesPerChange.toFixed(0)} socket writes per change here, where one write per
  client per change would be ${CLIENTS}), and waits on average half a pass for a subscriber's turn. Before
  (one flush of every socket per turn of the event loop) a change arriving during a flush waited
  for its end and then for its own turn in the next: a whole pass on average (commit → client p50
  15 ms in a trial at a load of 0.4, with a 8.7 ms flush). p50 < 5 ms thus needs a pass of the
  1,000 sockets under about 8 ms (≤ 8 µs per write) with the kernel's thread on a core when a
  change arrives; the receivers' reads, Postgres and the insert loop share the same 2 cores
  (the load average above).
` : ''}` : ''}${fig.floor ? `- **Floor** (one loopback TCP write per client per pass, nothing else in the writing thread;
  the receivers in a worker thread only read): with the native writer ${fig.floor.usPerWrite.toFixed(1)} µs of CPU per write (through
  Node's \`socket.write\`: ${fig.floor.node.usPerWrite.toFixed(1)} µs, pass ${fig.floor.node.passP50.toFixed(1)} ms), a pass over the ${CLIENTS}
  sockets p50 ${fig.floor.passP50.toFixed(1)} ms, so a change going round them waits ≈ ${(fig.floor.passP50 / 2).toFixed(1)} ms on average for a
  subscriber's turn before anything the hub does.${fig.floorLoaded ? ` While Postgres takes the latency part's
  inserts (${RATE}/s from pgbench, each a commit with its WAL flush, decoded by the kernel) the same writes
  cost ${fig.floorLoaded.usPerWrite.toFixed(1)} µs and a pass takes ${fig.floorLoaded.passP50.toFixed(1)} ms (${(fig.floorLoaded.passP50 / fig.floor.passP50).toFixed(2)}× the idle pass): that half pass, ≈ ${(fig.floorLoaded.passP50 / 2).toFixed(1)} ms, is what
  the latency part's writes meet before anything the hub does.` : ''} The latency row's p50 over that half pass is
  the hub's own work per write (framing, queueing, slices), the ~1 ms from commit to decoded
  change (trace above), and the 2 cores shared with the receivers, Postgres and the insert loop:
  a bound for any writer design on this host follows below ("Where p50 < 5 ms stands").${fig.floorThreads ? ` With ${fig.floorThreads.threads} writer threads (each
  accepting its share of the sockets with SO_REUSEPORT) the writers' pass is ${fig.floorThreads.passP50.toFixed(1)} ms against ${fig.floor.passP50.toFixed(1)} ms
  (${fig.floorThreads.usPerWrite.toFixed(1)} µs of CPU per write): the writes themselves spread over threads, but here the
  receivers, which only read, get what CPU is left (see the writer-thread prototype below).` : ''}
` : ''}${fig.fanout ? `- **Fan-out alone** (the hub built from src/realtime/hub.ts in the bench's process, fed synthetic
  changes, no Postgres or kernel process in the way; rounds alternate in one run): flushing the
  queue of clients in slices gives p50 ${fig.fanout.sliced.toFixed(1)} ms against ${fig.fanout.whole.toFixed(1)} ms for the same hub writing its whole
  queue per turn, as before (CPU of hub and receivers per frame: ${fig.fanout.cpuSliced.toFixed(1)} µs against ${fig.fanout.cpuWhole.toFixed(1)} µs; slices
  can mean more, smaller writes while the hub keeps up). A change reaches each client at that
  client's next turn in the pass under way instead of after the whole flush under way. The hub's
  thread spent ${fig.fanout.usPerWrite.toFixed(1)} µs of CPU per socket write (${fig.fanout.framesPerWrite.toFixed(1)} frames each) where the floor's raw writes take
  ${fig.floor ? `${fig.floor.usPerWrite.toFixed(1)} µs` : 'the floor part\'s figure'}: in alternating runs (floor with writes of the fan-out's size, then a fan-out round; trial
  runs before this one) the gap grew with the frames per write, ≈ 0.3 µs per frame (5.5 vs 6.7 µs at
  3.8 frames per write, 6.1 vs 9.2 µs at 10), the size of the write itself hardly counts (300 vs 1,800
  bytes: 5.1–5.3 vs 5.3–5.5 µs). In a CPU profile of these rounds the write syscall (\`writeBuffer\`) is
  ≈ 85 % of the hub's thread, Node's stream layer above it ≈ 6 % (≈ 0.6 µs per write) and the hub's
  per-frame work (\`deliver\` → \`send_\` → \`sendFrame\`: who gets the change, its frame, the
  client's queue) was ≈ 10 % (at most ≈ 1.5 µs of the ≈ 7.5 µs per write). Since then a change goes
  once into each *feed* (subscribers sent the same frames share a log of them, see docs/realtime.md)
  instead of once into each subscriber's queue: in \`perf\` profiles of the kernel under the latency
  part (\`MARK_FILE\`), receiving, decoding and queueing a change fell from ≈ 15 % to ≈ 7 % of its CPU,
  the write syscalls ≈ 63 → 68 %. Alternating 5 runs each of the latency part, the build before
  and the build with feeds read alike (p50 median 6.4 ms each): the writes set the pace. Since
  then the hub hands its writes to the native writer (both rounds of this part use it, as the
  kernel does by default), which leaves Node's stream layer and the per-socket call into C++ out.
${fig.fanout.threads ? `- **Writer threads (prototype, fan-out part only)**: ${fig.fanout.threads} threads, each with its own hub
  (bench/realtime-writer.mjs) behind a ws server listening on the same port with
  \`reusePort\` (SO_REUSEPORT: the kernel spreads the connections, ${fig.fanout.split} per round), each
  writing only its own sockets; every change posted to every thread. p50 ${fig.fanout.threaded.toFixed(1)} ms (rounds ${fig.fanout.threadRounds})
  against ${fig.fanout.sliced.toFixed(1)} ms (${fig.fanout.slicedRounds}) for one thread in the same run, and more CPU per frame
  (${fig.fanout.cpuThreaded.toFixed(1)} vs ${fig.fanout.cpuSliced.toFixed(1)} µs). On 2 cores the writers and the receivers' thread are 3 busy threads: shorter
  passes only mean more, smaller writes (each write costs the same syscall whatever it carries)
  and more of the receivers' reads, the receivers fall behind and the latency grows. In all 12 trial
  rounds of 5 runs on 2026-12-05 (quiet and loaded) the threads' p50 was at or above one thread's in the
  same run (9–47 ms vs 4–15 ms). Not built
  into the product: it pays only where the writers get cores of their own (clients elsewhere,
  more cores).
` : ''}` : ''}${fig.hubcpu ? `- **The hub's own CPU** (no sockets: writes that cost nothing): ${fig.hubcpu.us.toFixed(2)} µs per frame, ${fig.hubcpu.perWrite.toFixed(2)} µs per write
  of 5 frames (feed appends, the write queue, views of the feed logs, the flush loop; 0.45 µs
  per write before feeds): small
  against the ≈ 5–6 µs of the write syscall; with real sockets (other caches, another thread
  reading) the same work costs ≈ 0.3 µs per frame (fan-out above).
` : ''}${bound ? `- **Where p50 < 5 ms stands on this machine** (this run's figures): every write to a subscriber
  costs CPU twice on this host: the raw write, ${bound.writeUs.toFixed(1)} µs (floor part${fig.floorLoaded ? ', while Postgres takes the inserts' : ''}), and the receivers' read of it,
  ${bound.readUs.toFixed(1)} µs (fan-out part: ${(fig.fanout.cpuSliced * fig.fanout.framesPerWrite).toFixed(1)} µs of the process's CPU per write, ${fig.fanout.usPerWrite.toFixed(1)} of them the hub's thread). So even
  with a hub that costs nothing beyond the raw write, a pass over the ${CLIENTS} subscribers is ${bound.passCpu.toFixed(1)} ms
  of CPU, at least ${bound.passMin.toFixed(1)} ms of wall time on 2 cores however the writes are spread over threads,
  and a change waits on average half a pass for a subscriber's turn: ≥ ${(bound.passMin / 2).toFixed(1)} ms. Commit →
  walsender → kernel adds ${bound.decode.toFixed(1)} ms (trace, p50 of the first two phases; Postgres's and the socket's part,
  before the kernel does anything): ${bound.p50.toFixed(1)} ms. A frame that reaches the receivers while their thread reads other sockets
  waits for it: their event-loop delay in the latency part, p50 ${bound.recv.toFixed(2)} ms beyond the sampling timer's 1 ms. Together ≈ ${bound.total.toFixed(1)} ms, with
  nothing yet for the CPU that Postgres (walsender, the inserting backends) and the insert loop take
  from the same 2 cores. The latency part's p50 (${fig.lat ? fig.lat.p50.toFixed(1) : '?'} ms) is that plus those shares.
  What the hub could still save (under 1 µs per write since feeds and the native writer, above) is ≈ 0.5 ms of p50, and writer
  threads need cores the receivers do not use (prototype above). ${bound.total >= 5 ? 'So p50 < 5 ms is not reachable on this 2-core host with its 1,000 subscribers on it, whatever the hub does.' : `So p50 < 5 ms leaves ${(5 - bound.total).toFixed(1)} ms on this host for Postgres's and the insert loop's share and everything the hub does beyond its writes.`} With the subscribers on
  other hosts their reads leave this CPU and a pass is the writer's syscalls alone (on loopback
  ${fig.floor ? `${fig.floor.usPerWrite.toFixed(1)}` : '≈ 6–7'} µs each, which includes the receiver's TCP input; not measured over a NIC here), which writer
  threads would divide by the cores they get.
` : ''}- **RLS-checked delivery, 100 groups** (${fig.rls === undefined ? 'not run' : `p50 ${fig.rls.p50} ms vs ${fig.rls.open} ms unchecked`}; before: 152 ms vs 7 ms at a load of 16,
  and 88 vs 7 ms at a load of 2): changes that need a per-row check are batched (up to 1,000)
  and the groups are spread over the 4 connections of the RLS pool, each checking its share
  in one round trip (per group: \`set local role\`, \`set_config\` of the claims, one
  statement per table for all the batch's keys) — 4 parallel round trips per batch instead
  of 100 (25 rounds of 4). If one group's policy raises an error, that connection's groups are
  re-checked one by one. Prepared statements were not used: RLS plans are per role.
- **DELETE** events are not RLS-checked (as Supabase): see docs/realtime.md.
- Memory per idle connection and 10,000 held connections meet the target.
`
writeSection('realtime', md)
console.log(md)
