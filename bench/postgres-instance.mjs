// Postgres instance benchmark: initdb, start-to-ready, fast stop, adoption and kill -9 recovery
// through src/postgres against the raw tools (initdb, pg_ctl -w) in the same run.
// Run (without touching dist/):
//   npx tsc -p tsconfig.build.json --outDir /tmp/mf-dist; ln -sfn $PWD/node_modules /tmp/mf-dist/node_modules
//   echo '{"type":"module"}' > /tmp/mf-dist/package.json
//   MAGFLOCK_DIST=/tmp/mf-dist node_modules/.bin/node bench/postgres-instance.mjs
// Writes docs/benchmarks/postgres.md (`node bench/merge.mjs` folds it into docs/benchmarks.md).
import { execFileSync } from 'node:child_process'
import { setInterval, clearInterval } from 'node:timers'
import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, tmp, timeRun, stats, fmt, table, machine, writeSection, pgBin } from './lib.mjs'

const DIST = process.env.MAGFLOCK_DIST ?? path.join(ROOT, 'dist')
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href)
const { initInstance, startInstance, adoptInstance, pgIsReady } = await load('postgres/instance.js')
const { InstanceSupervisor } = await load('postgres/supervisor.js')
const { findPgBinaries } = await load('postgres/binaries.js')
const { postgresRunAs } = await load('platform/os-user.js')
const { default: pino } = await import(pathToFileURL(path.join(ROOT, 'node_modules/pino/pino.js')).href)

const BIN = pgBin()
const bins = findPgBinaries(BIN)
const runAs = postgresRunAs()
const asPg = runAs ? { uid: runAs.uid, gid: runAs.gid } : {}
const now = () => Number(process.hrtime.bigint()) / 1e6
const SETTINGS = { fsync: false, full_page_writes: false }

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}

async function spec(root, name) {
  const instanceDir = path.join(root, 'instances', name)
  return {
    name,
    instanceDir,
    dataDir: path.join(instanceDir, 'data'),
    logFile: path.join(instanceDir, 'postgres.log'),
    host: '127.0.0.1',
    port: await freePort(),
    superuser: 'postgres',
    bins,
    runAs,
    settings: SETTINGS,
    startTimeoutMs: 60_000,
  }
}

/** The raw baseline cluster: initdb with the same flags, then the same settings by hand. */
async function rawInit(root) {
  const data = path.join(root, 'raw')
  const pw = path.join(root, 'pw')
  mkdirSync(data, { mode: 0o700 })
  writeFileSync(pw, 'bench-pw', { mode: 0o600 })
  if (runAs) {
    chownSync(data, runAs.uid, runAs.gid)
    chownSync(pw, runAs.uid, runAs.gid)
  }
  const ms = timeRun(path.join(BIN, 'initdb'), ['-D', data, '--data-checksums', '--auth=scram-sha-256', '-U', 'postgres', `--pwfile=${pw}`, '-E', 'UTF8', '--locale=C'], asPg)
  const port = await freePort()
  writeFileSync(path.join(data, 'postgresql.auto.conf'), `port = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${root}'\nfsync = off\nfull_page_writes = off\n`)
  if (runAs) chownSync(path.join(data, 'postgresql.auto.conf'), runAs.uid, runAs.gid)
  return { ms, data, port }
}

const pgctl = (data, ...args) => timeRun(path.join(BIN, 'pg_ctl'), ['-D', data, ...args], asPg)
const postmasterPid = (data) => Number(execFileSync('head', ['-1', path.join(data, 'postmaster.pid')], { encoding: 'utf8' }).trim())

const samples = { initRaw: [], initMf: [], startRaw: [], startMf: [], stopRaw: [], stopMf: [], ready: [], adopt: [], crashRaw: [], crashMf: [] }
const log = pino({ level: 'silent' })

for (let i = 0; i < RUNS; i++) {
  const root = tmp('mf-bench-pg-')
  // the raw baseline writes its log and socket there as the postgres user
  if (runAs) chownSync(root, runAs.uid, runAs.gid)
  try {
    const raw = await rawInit(root)
    samples.initRaw.push(raw.ms)
    const s = await spec(root, 'primary')
    let t = now()
    await initInstance(s, 'bench-pw')
    samples.initMf.push(now() - t)

    samples.startRaw.push(pgctl(raw.data, '-l', path.join(root, 'raw.log'), '-w', '-t', '60', 'start'))
    t = now()
    const h = await startInstance(s)
    samples.startMf.push(now() - t)

    t = now()
    await pgIsReady(s)
    samples.ready.push(now() - t)
    t = now()
    const a = await adoptInstance(s)
    samples.adopt.push(now() - t)
    a?.detach()

    // kill -9 of the postmaster until it accepts connections again
    process.kill(postmasterPid(raw.data), 'SIGKILL')
    t = now()
    // pg_ctl may need a few tries while the orphaned backends still hold the shared memory
    for (let k = 0; ; k++) {
      try {
        pgctl(raw.data, '-l', path.join(root, 'raw.log'), '-w', '-t', '60', 'start')
        break
      } catch (err) {
        if (k > 100) throw err
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    samples.crashRaw.push(now() - t)

    h.detach()
    const sup = new InstanceSupervisor(s, {
      log,
      events: { publish: () => true },
      restart: { policy: 'always', initialBackoffMs: 50, maxRestarts: 5, windowMs: 60_000 },
    })
    await sup.start()
    const restarted = new Promise((resolve) => {
      const iv = setInterval(() => {
        if (sup.status().restarts === 1 && sup.status().state === 'running') {
          clearInterval(iv)
          resolve()
        }
      }, 5)
    })
    process.kill(sup.status().pid, 'SIGKILL')
    t = now()
    await restarted
    samples.crashMf.push(now() - t)

    samples.stopRaw.push(pgctl(raw.data, '-m', 'fast', '-w', 'stop'))
    t = now()
    await sup.stop({ keepRunning: false })
    samples.stopMf.push(now() - t)
  } finally {
    try {
      execFileSync(path.join(BIN, 'pg_ctl'), ['-D', path.join(root, 'raw'), '-m', 'immediate', 'stop'], { ...asPg, stdio: 'ignore' })
    } catch {
      // not running
    }
    rmSync(root, { recursive: true, force: true })
  }
}

const row = (label, mf, raw, note) => {
  const m = stats(mf)
  const r = raw ? stats(raw) : undefined
  return [label, fmt(m.p50), fmt(m.min), r ? fmt(r.p50) : '—', r ? `${(m.p50 / r.p50).toFixed(2)}×` : '—', note]
}
const rows = [
  row('initialise (initdb + settings + atomic rename)', samples.initMf, samples.initRaw, 'baseline: `initdb` with the same flags'),
  row('start until connections are accepted', samples.startMf, samples.startRaw, 'baseline: `pg_ctl start -w`'),
  row('adopt a running postmaster', samples.adopt, samples.ready, 'baseline: one `pg_isready`'),
  row('kill -9 postmaster → serving again', samples.crashMf, samples.crashRaw, 'MagFlock: supervisor (50 ms backoff); baseline: `pg_ctl start -w` retried by hand'),
  row('fast stop', samples.stopMf, samples.stopRaw, 'baseline: `pg_ctl stop -m fast -w`'),
]
const md = `## Postgres instances (src/postgres)

${machine()}, PostgreSQL ${bins.version}, ${RUNS} runs each (fsync off in both columns), p50 and best.
Command: see the header of \`bench/postgres-instance.mjs\` (\`MAGFLOCK_DIST=/tmp/mf-dist node_modules/.bin/node bench/postgres-instance.mjs\`).

${table(['operation', 'MagFlock p50', 'MagFlock min', 'raw p50', 'ratio', 'notes'], rows)}
`
console.log(md)
writeSection('postgres', md)
