// The managed PgBouncer vs connecting to Postgres directly, same kernel, same run.
//
//   npm run build && node bench/pooler.mjs          # DUR=10 CLIENTS=4 FAILOVERS=5 by default
//
// One in-process kernel with pooler.enabled and a pgbench database (scale 1), then pgbench -S
// both ways: -C (a new connection per transaction; what pooling is for) and persistent
// connections with one client (the latency the extra hop adds; p50 from pgbench's
// per-transaction log). Writes docs/benchmarks/pooler.md.
import { execFileSync, spawn } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { freePort, log, machine, pgBin, ROOT, stats, table, tmp, writeSection } from './lib.mjs'

const DIST = process.env.MAGFLOCK_DIST ?? path.join(ROOT, 'dist')
const DUR = Number(process.env.DUR ?? 10)
const CLIENTS = Number(process.env.CLIENTS ?? 4)
const FAILOVERS = Number(process.env.FAILOVERS ?? 5)
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href)
const { startKernel } = await load('daemon/boot.js')
const { SUPERUSER_SECRET } = await load('secrets/names.js')
const { replicationManager } = await load('daemon/replication.js')

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 6).toString('base64')

const dir = tmp('mf-bench-pooler-')
const pgPort = await freePort()
const poolerPort = await freePort()
const basePort = await freePort()
writeFileSync(
  path.join(dir, 'magflock.yaml'),
  `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\nreplication:\n  basePort: ${basePort}\nbackup:\n  walArchiving: false\npooler:\n  enabled: true\n  port: ${poolerPort}\n`,
)
const k = await startKernel({ stateDir: path.join(dir, '.magflock'), projectDir: dir })
try {
  const password = await k.services.secrets.get(SUPERUSER_SECRET)
  const env = { PATH: process.env.PATH, PGPASSWORD: password }
  const pgbench = (port, args, cwd = dir) =>
    execFileSync(path.join(pgBin(), 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { env, cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  pgbench(pgPort, ['-i', '-q', '-s', '1'])
  const tps = (out) => Number(/tps = ([\d.]+)/.exec(out)?.[1])
  const failed = (out) => Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0)
  const results = {}
  for (const [way, port] of [['direct', pgPort], ['pooled', poolerPort], ['direct', pgPort], ['pooled', poolerPort]]) {
    const out = pgbench(port, ['-n', '-S', '-C', '-c', String(CLIENTS), '-j', '2', '-T', String(DUR / 2)])
    ;(results[`C-${way}`] ??= []).push(tps(out))
    if (failed(out) > 0) throw new Error(`${way} -C: failed transactions`)
    log(`-C ${way}: ${tps(out)} tps`)
  }
  const lat = {}
  for (const [way, port] of [['direct', pgPort], ['pooled', poolerPort]]) {
    const logDir = path.join(dir, `log-${way}`)
    await fsp.mkdir(logDir)
    const out = pgbench(port, ['-n', '-S', '-c', '1', '-T', String(DUR), '-l', '--log-prefix', path.join(logDir, 'tx')], logDir)
    const us = readdirSync(logDir).flatMap((f) => readFileSync(path.join(logDir, f), 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[2])))
    lat[way] = { s: stats(us.map((x) => x / 1000)), tps: tps(out) }
    log(`-S ${way}: p50 ${lat[way].s.p50.toFixed(3)} ms, ${tps(out)} tps`)
  }
  // Switchovers under pgbench -N (writes), through the pooler and straight at the primary.
  const mgr = replicationManager(k.services)
  await mgr.add({ name: 'bench_r1' })
  const sw = {}
  for (const way of ['pooled', 'direct', 'pooled', 'direct']) {
    const port = way === 'pooled' ? poolerPort : k.instances.primary().port
    const child = spawn(path.join(pgBin(), 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-n', '-N', '-c', '4', '-R', '100', '-T', '10', 'postgres'], { env, cwd: dir })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const done = new Promise((resolve) => child.on('close', resolve))
    await new Promise((r) => setTimeout(r, 2500))
    const r = await mgr.switchover({})
    await done
    // pgbench 15: "client N script M aborted in command …" (older: "client N aborted in command …").
    const aborted = new Set([...out.matchAll(/client (\d+) (?:script \d+ )?aborted/g)].map((m) => m[1])).size
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0)
    const failedTx = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0)
    ;(sw[way] ??= []).push({ aborted, processed, failedTx, outage: r.writeOutageMs })
    log(`switchover ${way}: ${aborted} client(s) aborted, ${failedTx} failed, ${processed} processed, write outage ${r.writeOutageMs} ms`)
  }
  // Failovers (kill -9 of the primary, which the supervisor cannot restart: pg_control moved
  // away), with two writers running through the same event: one through the pooler (one client
  // connection, never reconnected by hand), one straight at Postgres that reconnects the way
  // libpq's target_session_attrs=read-write does (try each instance, keep the writable one).
  const pg = (await import('pg')).default
  const conn = (port) => ({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 1000 })
  const admin = new pg.Client(conn(k.instances.primary().port))
  await admin.connect()
  await admin.query('create table if not exists fo_acks (id bigserial primary key, way text not null, at timestamptz default clock_timestamp())')
  await admin.end()
  const writer = (way) => {
    // A write counts after the kill only once the new primary acknowledged it: backends of a
    // killed postmaster can still answer for a moment.
    const w = { way, firstOkAfterKill: undefined, killAt: undefined, oldPort: undefined, stop: false, acks: 0, errors: 0 }
    w.done = (async () => {
      let c
      const open = async () => {
        if (way === 'pooled') {
          const x = new pg.Client(conn(poolerPort))
          x.on('error', () => (x.broken = true))
          x.on('end', () => (x.broken = true))
          await x.connect()
          return x
        }
        for (const m of k.instances.members()) {
          const x = new pg.Client(conn(m.port))
          x.on('error', () => undefined)
          try {
            await x.connect()
            if (!(await x.query('select pg_is_in_recovery() as r')).rows[0].r) return x
          } catch {
            // next instance
          }
          await x.end().catch(() => undefined)
        }
        throw new Error('no writable instance')
      }
      while (!w.stop) {
        try {
          c ??= await open()
          const r = await c.query("insert into fo_acks (way) values ($1) returning current_setting('port')::int as port", [way])
          w.acks++
          if (w.killAt !== undefined && w.firstOkAfterKill === undefined && r.rows[0].port !== w.oldPort) w.firstOkAfterKill = performance.now()
          await new Promise((r) => setTimeout(r, 5))
        } catch {
          w.errors++
          // The pooled client keeps its connection unless PgBouncer closed it (it does when the
          // client's transaction was in flight on the dead primary).
          if (way === 'direct' || c?.broken) {
            await c?.end().catch(() => undefined)
            c = undefined
          }
          await new Promise((r) => setTimeout(r, 10))
        }
      }
      await c?.end().catch(() => undefined)
    })()
    return w
  }
  const fo = []
  // When the failover started and when the pooler pointed at the new primary, per trial.
  const marks = {}
  const current = () => k.instances.members().find((m) => m.role === 'primary')?.name
  k.services.events.subscribe((ev) => {
    if (['failover.started', 'pooler.repointed', 'failover.completed'].includes(ev.type)) marks[ev.type] ??= performance.now()
  })
  for (let trial = 0; trial < FAILOVERS; trial++) {
    for (const key of Object.keys(marks)) delete marks[key]
    const old = k.instances.primary()
    const ws = [writer('pooled'), writer('direct')]
    await new Promise((r) => setTimeout(r, 1000))
    const control = path.join(old.dataDir, 'global', 'pg_control')
    await fsp.rename(control, control + '.bench')
    const pid = Number(readFileSync(path.join(old.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    const killAt = performance.now()
    for (const w of ws) Object.assign(w, { killAt, oldPort: old.port })
    process.kill(pid, 'SIGKILL')
    const deadline = Date.now() + 60_000
    while (ws.some((w) => w.firstOkAfterKill === undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const w of ws) w.stop = true
    await Promise.all(ws.map((w) => w.done))
    const [p, d] = ws.map((w) => (w.firstOkAfterKill === undefined ? NaN : w.firstOkAfterKill - killAt))
    const at = (type) => (marks[type] === undefined ? NaN : marks[type] - killAt)
    fo.push({ pooled: p, direct: d, pooledErrors: ws[0].errors, directErrors: ws[1].errors, started: at('failover.started'), repointed: at('pooler.repointed'), completed: at('failover.completed') })
    log(`failover ${trial + 1}: ${old.name} → ${current()}; first write pooled ${p.toFixed(0)} ms, direct ${d.toFixed(0)} ms (failover started ${at('failover.started').toFixed(0)}, pooler repointed ${at('pooler.repointed').toFixed(0)}, completed ${at('failover.completed').toFixed(0)} ms)`)
    while ((current() === undefined || current() === old.name) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    // The old primary comes back as a replica for the next trial.
    await fsp.rename(control + '.bench', control)
    for (;;) {
      try {
        await mgr.rejoin(old.name)
        break
      } catch (err) {
        // The failover still holds the topology lock for its last steps.
        if (err.code !== 'E_BUSY' || Date.now() > deadline) throw err
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  }
  const foStats = (key) => stats(fo.map((x) => x[key]))
  const swCell = (way) => sw[way].map((x) => `${x.failedTx} failed, ${x.aborted}/4 clients aborted, ${x.processed} done (outage ${x.outage} ms)`).join('; ')
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length
  const cD = mean(results['C-direct'])
  const cP = mean(results['C-pooled'])
  const added = lat.pooled.s.p50 - lat.direct.s.p50
  writeSection(
    'pooler',
    `## Connection pooling: managed PgBouncer vs direct\n\n` +
      `\`node bench/pooler.mjs\` (DUR=${DUR}, CLIENTS=${CLIENTS}, FAILOVERS=${FAILOVERS}) — ${machine()}. PgBouncer ${execFileSync('/usr/sbin/pgbouncer', ['--version'], { encoding: 'utf8' }).split('\n')[0].replace('PgBouncer ', '')}, transaction pooling, SCRAM; pgbench -S on a scale-1 database, same kernel and Postgres for both ways.\n\n` +
      table(
        ['pgbench', 'direct', 'pooled', 'ratio / added', 'target'],
        [
          [`\`-S -C\` (new connection per transaction), ${CLIENTS} clients, tps (mean of 2)`, cD.toFixed(0), cP.toFixed(0), `${(cP / cD).toFixed(2)}×`, '≫ 1×'],
          ['`-S` persistent, 1 client, latency p50', `${lat.direct.s.p50.toFixed(3)} ms`, `${lat.pooled.s.p50.toFixed(3)} ms`, `+${added.toFixed(3)} ms`, '≤ +0.1 ms'],
          ['`-S` persistent, 1 client, latency p99', `${lat.direct.s.p99.toFixed(3)} ms`, `${lat.pooled.s.p99.toFixed(3)} ms`, `+${(lat.pooled.s.p99 - lat.direct.s.p99).toFixed(3)} ms`, ''],
          ['`-S` persistent, 1 client, tps', lat.direct.tps.toFixed(0), lat.pooled.tps.toFixed(0), `${(lat.pooled.tps / lat.direct.tps).toFixed(2)}×`, ''],
          ['`-N -c 4 -R 100` during `switchover` (2 trials each)', swCell('direct'), swCell('pooled'), '', 'pooled: 0 failed, 0 aborted'],
          [`kill -9 of the primary → first acknowledged write (median of ${FAILOVERS} failovers, both writers in each)`, `${foStats('direct').p50.toFixed(0)} ms`, `${foStats('pooled').p50.toFixed(0)} ms`, `+${(foStats('pooled').p50 - foStats('direct').p50).toFixed(0)} ms`, 'pooled within +200 ms of direct'],
        ],
      ) +
      '\n\nWith `-C` every transaction pays a SCRAM handshake (4096 PBKDF2 iterations in pgbench and again in PgBouncer, or in the backend when direct); pooling saves the backend fork and its authentication, not the client\'s own key derivation, so on this 2-core machine (pgbench, PgBouncer and Postgres sharing it) the gain is bounded. The persistent p99 is noisy on a shared machine.' +
      '\n\nDuring a switchover a direct pgbench client whose server goes away aborts (pgbench does not reconnect); through the pooler the clients wait while PgBouncer is paused and carry on. In a failover both writers see the same event (the postmaster is killed with its pg_control moved away, so the supervisor cannot restart it and the monitor promotes the replica after `replication.failover.graceSeconds` = 1 s); the direct writer reconnects the way libpq\'s `target_session_attrs=read-write` does, the pooled one keeps its single connection. Per trial (direct / pooled, ms): ' + fo.map((x) => `${x.direct.toFixed(0)} / ${x.pooled.toFixed(0)}`).join(', ') + '.\n',
  )
  log('wrote docs/benchmarks/pooler.md')
} finally {
  await k.shutdown({ keepPostgres: false, reason: 'bench' })
  await fsp.rm(dir, { recursive: true, force: true })
}
