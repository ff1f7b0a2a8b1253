// Foundation benchmark (issue 2): CLI start-up, `up` cold/warm, control API latency.
// Run: npm run build && node_modules/.bin/node bench/foundation.mjs
// Writes docs/benchmarks/foundation.md and rebuilds docs/benchmarks.md.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, mkdirSync, writeFileSync, readFileSync, symlinkSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { ROOT, NODE, tmp, timeRun, stats, fmt, table, machine, writeSection, mergeBenchmarks, pgBin } from './lib.mjs'

const RUNS = Number(process.env.BENCH_RUNS ?? 15)
const RUN_JS = path.join(ROOT, 'bin/run.js')

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}

function postgresUser() {
  if (process.getuid() !== 0) return undefined
  const [, , uid, gid] = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim().split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

function sample(label, n, fn) {
  fn() // warm-up (compile cache, page cache)
  const xs = []
  for (let i = 0; i < n; i++) xs.push(fn())
  const s = stats(xs)
  console.log(`${label}: p50 ${fmt(s.p50)} (min ${fmt(s.min)})`)
  return s
}

// --- 1. a minimal two-command oclif CLI built with the project's own @oclif/core --------
function buildMinimalOclif() {
  const dir = tmp('mf-bench-oclif-')
  mkdirSync(path.join(dir, 'commands'), { recursive: true })
  mkdirSync(path.join(dir, 'node_modules/@oclif'), { recursive: true })
  symlinkSync(path.join(ROOT, 'node_modules/@oclif/core'), path.join(dir, 'node_modules/@oclif/core'))
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'mini', version: '1.0.0', type: 'module', files: ['commands', 'run.js'], oclif: { bin: 'mini', commands: './commands' } }))
  for (const name of ['hello', 'world']) {
    writeFileSync(path.join(dir, 'commands', `${name}.js`), `import { Command } from '@oclif/core'\nexport default class X extends Command { static enableJsonFlag = true; async run() { await this.parse(X); return { ${name}: true } } }\n`)
  }
  writeFileSync(path.join(dir, 'run.js'), `import module from 'node:module'\nmodule.enableCompileCache?.()\nconst { execute } = await import('@oclif/core')\nawait execute({ dir: import.meta.url })\n`)
  execFileSync(NODE, [path.join(ROOT, 'node_modules/oclif/bin/run.js'), 'manifest'], { cwd: dir, stdio: 'ignore' })
  return dir
}

const out = []
console.log(machine())

// Start-up ------------------------------------------------------------------------------
const mini = buildMinimalOclif()
const nodeE0 = sample('node -e 0', RUNS, () => timeRun(NODE, ['-e', '0']))
const miniV = sample('minimal oclif --version', RUNS, () => timeRun(NODE, [path.join(mini, 'run.js'), '--version']))
const miniCmd = sample('minimal oclif hello --json', RUNS, () => timeRun(NODE, [path.join(mini, 'run.js'), 'hello', '--json']))
const mfV = sample('magflock --version', RUNS, () => timeRun(NODE, [RUN_JS, '--version']))

// A flock for status and API timings ----------------------------------------------------
const proj = tmp('mf-bench-flock-')
const pgPort = await freePort()
const metricsPort = await freePort()
writeFileSync(path.join(proj, 'magflock.yaml'), `postgres:\n  port: ${pgPort}\nmetrics:\n  port: ${metricsPort}\n`)
const env = { ...process.env, MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), MAGFLOCK_PREFS_DIR: path.join(proj, '.prefs') }
const cli = (args) => timeRun(NODE, [RUN_JS, ...args], { cwd: proj, env })

const upCold = cli(['up', '--json'])
console.log(`magflock up (cold): ${fmt(upCold)}`)
const mfStatus = sample('magflock status --json', RUNS, () => cli(['status', '--json']))

// Control API latency -------------------------------------------------------------------
const token = readFileSync(path.join(proj, '.magflock/admin.token'), 'utf8').trim()
const info = JSON.parse(readFileSync(path.join(proj, '.magflock/kernel.json'), 'utf8'))
function getStatus(agent) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const req = http.request({ socketPath: info.socket, path: '/v1/status', headers: { host: 'magflock', authorization: `Bearer ${token}` }, agent }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(String(res.statusCode)))))
    })
    req.on('error', reject)
    req.end()
  })
}
for (let i = 0; i < 50; i++) await getStatus()
const seq = []
for (let i = 0; i < 1000; i++) seq.push(await getStatus())
const seqS = stats(seq)
const conc = []
const start = Date.now()
await Promise.all(
  Array.from({ length: 50 }, async () => {
    for (let i = 0; i < 20; i++) conc.push(await getStatus())
  }),
)
const concWall = Date.now() - start
const concS = stats(conc)
console.log(`API sequential p50 ${fmt(seqS.p50)} p99 ${fmt(seqS.p99)}; 50 concurrent p50 ${fmt(concS.p50)} p99 ${fmt(concS.p99)}`)

// Warm up: data initialised, kernel and Postgres stopped ----------------------------------
cli(['down', '--json'])
const upWarm = []
for (let i = 0; i < 5; i++) {
  upWarm.push(cli(['up', '--json']))
  cli(['down', '--json'])
}
const upWarmS = stats(upWarm)

// Raw baselines: initdb + pg_ctl start -w with the same settings, as the postgres user ----
const bin = pgBin()
const pu = postgresUser()
const asPg = pu ? { uid: pu.uid, gid: pu.gid, env: { ...process.env, HOME: '/tmp' }, cwd: '/tmp' } : {}
const rawCold = []
const rawWarm = []
for (let i = 0; i < 5; i++) {
  const d = tmp('mf-bench-raw-')
  if (pu) chownSync(d, pu.uid, pu.gid)
  const pw = path.join(d, 'pw')
  writeFileSync(pw, 'secret-bench', { mode: 0o600 })
  if (pu) chownSync(pw, pu.uid, pu.gid)
  const port = await freePort()
  const data = path.join(d, 'data')
  const opts = ['-c', `port=${port}`, '-c', "listen_addresses=127.0.0.1", '-c', `unix_socket_directories=${d}`]
  const t0 = process.hrtime.bigint()
  spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', `--pwfile=${pw}`, '--auth=scram-sha-256', '--data-checksums', '-E', 'UTF8'], { ...asPg, stdio: 'ignore' })
  spawnSync(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(d, 'log'), '-o', opts.join(' '), '-w', 'start'], { ...asPg, stdio: 'ignore' })
  rawCold.push(Number(process.hrtime.bigint() - t0) / 1e6)
  spawnSync(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], { ...asPg, stdio: 'ignore' })
  rawWarm.push(timeRun(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(d, 'log'), '-o', opts.join(' '), '-w', 'start'], asPg))
  spawnSync(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], { ...asPg, stdio: 'ignore' })
  rmSync(d, { recursive: true, force: true })
}
// A second cold `up` sample on a fresh project, so cold is a median of several.
const upColdAll = [upCold]
for (let i = 0; i < 4; i++) {
  const p2 = tmp('mf-bench-cold-')
  const port2 = await freePort()
  const mport2 = await freePort()
  writeFileSync(path.join(p2, 'magflock.yaml'), `postgres:\n  port: ${port2}\nmetrics:\n  port: ${mport2}\n`)
  const env2 = { ...env, MAGFLOCK_PREFS_DIR: path.join(p2, '.prefs') }
  upColdAll.push(timeRun(NODE, [RUN_JS, 'up', '--json'], { cwd: p2, env: env2 }))
  timeRun(NODE, [RUN_JS, 'down', '--json'], { cwd: p2, env: env2 })
  rmSync(p2, { recursive: true, force: true })
}
const rawColdS = stats(rawCold)
const rawWarmS = stats(rawWarm)
const upColdS = stats(upColdAll)
rmSync(proj, { recursive: true, force: true })
rmSync(mini, { recursive: true, force: true })

const ratio = (a, b) => `${(a / b).toFixed(2)}×`
out.push(`## Foundation (issue 2)\n\n\`npm run build && node_modules/.bin/node bench/foundation.mjs\` — ${machine()}, ${RUNS} runs per start-up row (p50).\n`)
out.push(
  table(
    ['what', 'p50', 'baseline', 'baseline p50', 'ratio', 'target'],
    [
      ['`magflock --version`', fmt(mfV.p50), 'minimal 2-command oclif CLI `--version`', fmt(miniV.p50), ratio(mfV.p50, miniV.p50), '≤ 1.2×'],
      ['`magflock status --json` (API round trip)', fmt(mfStatus.p50), 'minimal oclif CLI `hello --json`', fmt(miniCmd.p50), ratio(mfStatus.p50, miniCmd.p50), '≤ 1.5×'],
      ['(floor) `node -e 0`', fmt(nodeE0.p50), '', '', '', ''],
      ['`magflock up`, fresh state dir (median of 5)', fmt(upColdS.p50), 'raw `initdb` + `pg_ctl start -w`', fmt(rawColdS.p50), ratio(upColdS.p50, rawColdS.p50), '≤ 1.2×'],
      ['`magflock up`, initialised, kernel stopped (median of 5)', fmt(upWarmS.p50), 'raw `pg_ctl start -w`', fmt(rawWarmS.p50), ratio(upWarmS.p50, rawWarmS.p50), '≤ 1.5×'],
    ],
  ),
)
out.push('\nControl API `GET /v1/status` over the Unix socket (a new connection per call, as the CLI does):\n')
out.push(
  table(
    ['load', 'calls', 'p50', 'p99', 'target'],
    [
      ['sequential', String(seqS.n), fmt(seqS.p50), fmt(seqS.p99), 'p99 < 5 ms'],
      [`50 concurrent clients (${concWall} ms wall)`, String(concS.n), fmt(concS.p50), fmt(concS.p99), ''],
    ],
  ),
)
writeSection('01-foundation', out.join('\n'))
mergeBenchmarks()
console.log(out.join('\n'))
