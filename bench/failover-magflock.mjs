/* global performance */
// MagFlock side of bench/failover-compare.sh: an in-process kernel (its supervisors and the
// failover-monitor component, default settings: graceSeconds 1), primary + one replica on
// loopback, the anchor's psql writer (one INSERT every 50 ms, libpq multi-host with
// target_session_attrs=read-write), and the same kills the Patroni anchor does.
//
//   failover  kill -9 of the primary's postmaster and all its children, with its data dir made
//             unable to start (pg_control renamed) — the equivalent of Patroni's "node death",
//             where the agent is killed too and nothing restarts Postgres in place.
//             RTO = kill → first acknowledged INSERT on the new primary. Then pg_control is
//             put back and the old primary rejoins (timed) with pg_rewind.
//   stall     the same after SIGSTOP of the walsender for 2 s (replication frozen): acked
//             writes lost, async vs sync.
//   pgcrash   kill -9 of the postmaster only, data dir intact: the supervisor kills its orphaned
//             backends at once and restarts it in place (no failover expected).
//   switchover  manager.switchover() under the writer: longest gap between acked writes.
//
// Results: $BENCH_OUT/magflock/*.tsv, same columns as the anchor's results, plus `timeline`
// (ms from the kill to each kernel event: crashed, restart-failed, restarted, failover started
// and completed). BENCH_ONLY=failover|pgcrash|async-stall|switchover runs one kind of trial only.
import { execFileSync, spawn } from 'node:child_process'
import { promises as fsp, mkdirSync, readFileSync, writeFileSync, existsSync, appendFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { freePort, log, ROOT, tmp } from './lib.mjs'

const DIST = process.env.MAGFLOCK_DIST ?? path.join(ROOT, 'dist')
const OUT = path.join(process.env.BENCH_OUT ?? '/tmp/mf-bench-failover', 'magflock')
const N = Number(process.env.BENCH_RUNS ?? 5)
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href)
const { startKernel } = await load('daemon/boot.js')
const { replicationManager } = await load('daemon/replication.js')
const { readPostmasterPid } = await load('postgres/pidfile.js')
const { SUPERUSER_SECRET } = await load('secrets/names.js')
const { default: pg } = await import(pathToFileURL(path.join(ROOT, 'node_modules/pg/lib/index.js')).href)

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 5).toString('base64')
mkdirSync(OUT, { recursive: true })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const nowUs = () => Math.round(performance.timeOrigin * 1000 + performance.now() * 1000)

function parseLog(file) {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
    const [seq, t0, t1, rc, port] = l.split(' ')
    return { seq: Number(seq), t0: Number(t0), t1: Number(t1), rc: Number(rc), port: port === 'none' ? 0 : Number(port) }
  })
}

async function up(sync) {
  const dir = tmp('mf-bench-fo-')
  const pgPort = await freePort()
  const basePort = await freePort()
  writeFileSync(path.join(dir, 'magflock.yaml'), `postgres:\n  port: ${pgPort}\nmetrics:\n  enabled: false\nreplication:\n  basePort: ${basePort}\n`)
  const t0 = Date.now()
  const k = await startKernel({ stateDir: path.join(dir, '.magflock'), projectDir: dir })
  // Kernel events with their time, for each trial's timeline column (where the RTO goes).
  const events = []
  k.services.events.subscribe((ev) => events.push({ type: ev.type, us: nowUs(), payload: ev.payload }))
  const mgr = replicationManager(k.services)
  await mgr.add({ name: 'r1', sync })
  // The kernel runs its own failover-monitor component (default settings).
  const password = await k.services.secrets.get(SUPERUSER_SECRET)
  const ports = mgr.deps.registry.list().map((m) => m.node.port)
  const dsn = `host=127.0.0.1,127.0.0.1 port=${ports.join(',')} user=postgres dbname=postgres connect_timeout=1 target_session_attrs=read-write application_name=anchor-writer`
  const q = async (port, sql, params = []) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' })
    await c.connect()
    try {
      return (await c.query(sql, params)).rows
    } finally {
      await c.end()
    }
  }
  const primary = () => mgr.deps.registry.list().find((m) => m.role === 'primary')
  await q(primary().node.port, 'create table if not exists anchor_bench(run text not null, seq int not null, ts timestamptz default clock_timestamp(), primary key(run, seq))')
  log(`up: sync=${sync} primary :${ports[0]} replica :${ports[1]} in ${Date.now() - t0} ms`)
  return { dir, k, mgr, password, dsn, q, primary, ports, events }
}

async function down(f) {
  await f.k.shutdown({ keepPostgres: false, reason: 'bench' })
  // BENCH_KEEP_LOGS=1: the instances' postgres.log files go to $BENCH_OUT/magflock/logs-<n>/ first.
  if (process.env.BENCH_KEEP_LOGS) await fsp.cp(path.join(f.dir, '.magflock/instances'), path.join(OUT, `logs-${Date.now()}`), { recursive: true, filter: (src) => !src.includes('/data') })
  await fsp.rm(f.dir, { recursive: true, force: true })
}

function startWriter(f, run) {
  const wlog = path.join(f.dir, `writer-${run}.log`)
  const stop = path.join(f.dir, `stop-${run}`)
  rmSync(stop, { force: true })
  const child = spawn('bash', [path.join(ROOT, 'bench/failover-writer.sh'), run, wlog, stop, '240'], {
    env: { ...process.env, WRITER_DSN: f.dsn, PGPASSWORD: f.password },
    stdio: 'ignore',
  })
  const done = new Promise((r) => child.on('exit', r))
  return {
    wlog,
    async stop() {
      writeFileSync(stop, '')
      await done
    },
  }
}

async function waitStreaming(f, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const p = f.primary()
    try {
      const r = await f.q(p.node.port, `select count(*)::int as n from pg_stat_replication where state = 'streaming' and application_name <> 'pg_basebackup'`)
      if (r[0].n >= 1) return
    } catch {
      // retry
    }
    if (Date.now() > deadline) throw new Error('replica not streaming')
    await sleep(100)
  }
}

function childrenOf(pid) {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map((l) => {
      const [p, ...a] = l.trim().split(/\s+/)
      return { pid: Number(p), args: a.join(' ') }
    })
  } catch {
    return []
  }
}

async function lostOf(f, run, acked) {
  // The primary may still be in crash recovery (pgcrash): retry until it answers.
  for (let i = 0; ; i++) {
    try {
      const present = new Set((await f.q(f.primary().node.port, 'select seq from anchor_bench where run = $1', [run])).map((r) => r.seq))
      return acked.filter((s) => !present.has(s))
    } catch (err) {
      if (i > 300) throw err
      await sleep(200)
    }
  }
}

/** Brings every fenced instance back with pg_rewind (retrying while the monitor holds the topology lock). */
async function rejoinFenced(f) {
  for (const m of f.mgr.deps.registry.list().filter((x) => x.role === 'fenced')) {
    let rj
    for (let i = 0; i < 300 && !rj; i++) {
      try {
        rj = await f.mgr.rejoin(m.name, { allowReclone: false })
      } catch (err) {
        if (err.code !== 'E_BUSY') throw err
        await sleep(100)
      }
    }
  }
}

/** `crashed+12,restart-failed+250,...`: ms from the kill to the first of each kernel event. */
function timeline(f, tKill) {
  const want = ['instance.crashed', 'instance.restart-failed', 'instance.restarted', 'failover.started', 'failover.completed']
  const seen = []
  for (const t of want) {
    const e = f.events.find((x) => x.type === t && x.us >= tKill)
    if (e) seen.push(`${t.replace(/^(instance|failover)\./, '')}+${Math.round((e.us - tKill) / 1000)}`)
  }
  return seen.join(',') || 'none'
}

/** Waits until the monitor calls the primary healthy (no failover or restart under way). */
async function settle(f, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs
  while (!/^primary \S+ is healthy/.test(f.k.services.live.failoverMonitor?.lastDecision()?.decision.sentence ?? '')) {
    if (Date.now() > deadline) throw new Error(`monitor did not settle: ${f.k.services.live.failoverMonitor?.lastDecision()?.decision.sentence}`)
    await sleep(100)
  }
}

async function failoverTrial(f, label, sync, trial, stallS) {
  await settle(f)
  await waitStreaming(f)
  // Unique per kind of trial: a stall trial reusing a failover trial's id found its stop file
  // already there, so its writer exited at once ("writer acked nothing").
  const run = `fo-${label}${stallS ? `-stall${stallS}` : ''}-${trial}-${process.pid}`
  const old = f.primary()
  const survivor = f.mgr.deps.registry.list().find((m) => m.name !== old.name)
  const w = startWriter(f, run)
  await sleep(3000)
  const pm = (await readPostmasterPid(old.node.dataDir)).pid
  if (stallS) {
    for (const c of childrenOf(pm).filter((c) => c.args.includes('walsender'))) process.kill(c.pid, 'SIGSTOP')
    await sleep(stallS * 1000)
  }
  const kids = childrenOf(pm).map((c) => c.pid)
  const tKill = nowUs()
  for (const p of [pm, ...kids]) {
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      // gone
    }
  }
  // Make it unable to start, like a dead node: nothing may restart it in place.
  await fsp.rename(path.join(old.node.dataDir, 'global', 'pg_control'), path.join(old.node.dataDir, 'global', 'pg_control.bench'))
  let first
  const deadline = Date.now() + 60_000
  while (!first && Date.now() < deadline) {
    first = parseLog(w.wlog).find((e) => e.t1 > tKill && e.rc === 0 && e.port === survivor.node.port)
    if (!first) await sleep(50)
  }
  await sleep(2000)
  await w.stop()
  const rows = parseLog(w.wlog)
  const acked = rows.filter((e) => e.rc === 0).map((e) => e.seq)
  const ackedBefore = rows.filter((e) => e.rc === 0 && e.t1 <= tKill).length
  const lastOk = rows.filter((e) => e.rc === 0 && e.t1 <= tKill).at(-1)?.t1 ?? tKill
  const lost = await lostOf(f, run, acked)
  const rto = first ? Math.round((first.t1 - tKill) / 1000) : 'NA'
  const gap = first ? Math.round((first.t1 - lastOk) / 1000) : 'NA'
  const sentence = [...(f.k.services.live.failoverMonitor?.history ?? [])].reverse().find((x) => x.startsWith('promoted ')) ?? f.k.services.live.failoverMonitor?.lastDecision()?.decision.sentence
  // Rejoin: the node comes back (pg_control restored); pg_rewind against the new primary.
  await fsp.rename(path.join(old.node.dataDir, 'global', 'pg_control.bench'), path.join(old.node.dataDir, 'global', 'pg_control'))
  let rj
  const tRe = Date.now()
  for (let i = 0; i < 200 && !rj; i++) {
    try {
      rj = await f.mgr.rejoin(old.name, { allowReclone: false })
    } catch (err) {
      if (err.code !== 'E_BUSY') throw err
      await sleep(100)
    }
  }
  await waitStreaming(f)
  const rejoinMs = Date.now() - tRe
  if (acked.length === 0) log(`writer acked nothing; its log ends with:\n${readFileSync(w.wlog, 'utf8').trim().split('\n').slice(-5).join('\n')}`)
  const lbl = stallS ? `${label}+stall${stallS}s` : label
  const line = ['failover', lbl, sync, trial, `${old.name}->${survivor.name}`, `rto_ms=${rto}`, `gap_ms=${gap}`, `acked=${acked.length}`, `acked_before_kill=${ackedBefore}`, `lost=${lost.length}`, `rejoin_ms=${rejoinMs}`, `pg_rewind=${rj.method === 'rewind' ? 'yes' : rj.method}`, `timeline=${timeline(f, tKill)}`, `monitor=${sentence}`].join('\t')
  console.log(line)
  appendFileSync(path.join(OUT, 'failover.tsv'), line + '\n')
}

async function pgcrashTrial(f, label, sync, trial) {
  await waitStreaming(f)
  const run = `pc-${label}-${trial}-${process.pid}`
  const p = f.primary()
  const w = startWriter(f, run)
  await sleep(3000)
  const pm = (await readPostmasterPid(p.node.dataDir)).pid
  const tKill = nowUs()
  process.kill(pm, 'SIGKILL')
  let first
  const deadline = Date.now() + 60_000
  while (!first && Date.now() < deadline) {
    first = parseLog(w.wlog).find((e) => e.t1 > tKill && e.rc === 0)
    if (!first) await sleep(50)
  }
  await sleep(1000)
  await w.stop()
  // A failover may still be under way (the writer was served by an orphaned backend, or the
  // grace ran out during crash recovery): settle first, or the bookkeeping below and the next
  // trial race with it (the first run's "async stall trials after pgcrash acked nothing").
  await settle(f)
  const acked = parseLog(w.wlog).filter((e) => e.rc === 0).map((e) => e.seq)
  const lost = await lostOf(f, run, acked)
  // With graceSeconds 1 a crash recovery that takes longer is failed over: bring the old one back.
  const failedOver = f.primary().name !== p.name
  const tl = timeline(f, tKill)
  await rejoinFenced(f)
  const line = ['pgcrash', label, sync, trial, p.name, `rto_ms=${first ? Math.round((first.t1 - tKill) / 1000) : 'NA'}`, `served_by=${first?.port}`, `leader_after=${f.primary().name}`, `failed_over=${failedOver}`, `lost=${lost.length}`, `timeline=${tl}`].join('\t')
  console.log(line)
  appendFileSync(path.join(OUT, 'pgcrash.tsv'), line + '\n')
}

async function switchoverTrial(f, label, sync, trial) {
  await waitStreaming(f)
  const run = `so-${label}-${trial}-${process.pid}`
  const old = f.primary()
  const w = startWriter(f, run)
  await sleep(3000)
  const t0 = nowUs()
  const r = await f.mgr.switchover({})
  const t1 = nowUs()
  let first
  const deadline = Date.now() + 60_000
  const newPort = f.primary().node.port
  while (!first && Date.now() < deadline) {
    first = parseLog(w.wlog).find((e) => e.t1 > t0 && e.rc === 0 && e.port === newPort)
    if (!first) await sleep(50)
  }
  await sleep(1000)
  await w.stop()
  const rows = parseLog(w.wlog).filter((e) => e.rc === 0)
  let gap = 0
  for (let i = 1; i < rows.length; i++) gap = Math.max(gap, rows[i].t1 - rows[i - 1].t1)
  const lost = await lostOf(f, run, rows.map((e) => e.seq))
  const line = ['switchover', label, sync, trial, `${old.name}->${r.to}`, `cmd_s=${((t1 - t0) / 1e6).toFixed(2)}`, `first_write_ms=${first ? Math.round((first.t1 - t0) / 1000) : 'NA'}`, `gap_ms=${Math.round(gap / 1000)}`, `rejoin_ms=${Math.round((t1 - t0) / 1000)}`, `lost=${lost.length}`, `outage_server_ms=${r.writeOutageMs}`, `phases=${Object.entries(r.phases ?? {}).map(([k, v]) => `${k.replace(/Ms$/, '')}:${v}`).join(',')}`].join('\t')
  console.log(line)
  appendFileSync(path.join(OUT, 'switchover.tsv'), line + '\n')
}

const ONLY = process.env.BENCH_ONLY
if (!ONLY) for (const f of ['failover.tsv', 'pgcrash.tsv', 'switchover.tsv']) await fsp.rm(path.join(OUT, f), { force: true })
writeFileSync(path.join(OUT, 'env.txt'), `date: ${new Date().toISOString()}\n${execFileSync('uname', ['-srm'], { encoding: 'utf8' })}cpus: ${execFileSync('nproc', { encoding: 'utf8' })}`)

// Quick runs while iterating: only the unplanned failover trials, or only the crash-in-place ones.
if (ONLY === 'failover' || ONLY === 'pgcrash') {
  const f = await up(false)
  try {
    for (let t = 1; t <= N; t++) await (ONLY === 'failover' ? failoverTrial(f, 'default', false, t) : pgcrashTrial(f, 'default', false, t))
  } finally {
    await down(f)
  }
  process.exit(0)
}
if (ONLY === 'switchover') {
  for (const sync of [false, true]) {
    const f = await up(sync)
    try {
      for (let t = 1; t <= 3; t++) await switchoverTrial(f, 'default', sync, t)
    } finally {
      await down(f)
    }
  }
  process.exit(0)
}
if (ONLY === 'async-stall') {
  const f = await up(false)
  try {
    for (let t = 1; t <= 3; t++) await failoverTrial(f, 'default', false, t, 2)
    await pgcrashTrial(f, 'debug', false, 1)
    await failoverTrial(f, 'debug-after-pgcrash', false, 1, 2)
  } finally {
    await down(f)
  }
  process.exit(0)
}
{
  const f = await up(false)
  try {
    for (let t = 1; t <= N; t++) await failoverTrial(f, 'default', false, t)
    for (let t = 1; t <= 3; t++) await switchoverTrial(f, 'default', false, t)
    for (let t = 1; t <= 3; t++) await failoverTrial(f, 'default', false, t, 2)
    for (let t = 1; t <= 3; t++) await pgcrashTrial(f, 'default', false, t)
  } finally {
    await down(f)
  }
}
{
  const f = await up(true)
  try {
    for (let t = 1; t <= 3; t++) await failoverTrial(f, 'default', true, t, 2)
    for (let t = 1; t <= 3; t++) await switchoverTrial(f, 'default', true, t)
  } finally {
    await down(f)
  }
}
log('done')
process.exit(0)
