// Migrations benchmark: apply 500 small migrations with MagFlock's runner vs calling
// postgres-migrations' migrate() directly (the baseline), alternating, on one throwaway
// Postgres (fsync=off for both: this measures the tools, not the disk); then
// `db migrate status` on 500 applied migrations, in-process and as the CLI.
// Run: npx tsc -p tsconfig.build.json && node_modules/.bin/node bench/migrations-apply.mjs
// Env: BENCH_MIGRATIONS (500), BENCH_ROUNDS (3), MAGFLOCK_DIST (dist).
// Writes docs/benchmarks/migrations.md.
import { spawnSync } from 'node:child_process'
import { chownSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, tmp, stats, fmt, table, machine, writeSection, pgBin, NODE } from './lib.mjs'

const N = Number(process.env.BENCH_MIGRATIONS ?? 500)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const DIST = process.env.MAGFLOCK_DIST ?? path.join(ROOT, 'dist')
const require = createRequire(path.join(ROOT, 'package.json'))
const { migrate: rawMigrate } = require('postgres-migrations')
const pg = require('pg')
const { runMigrations, migrationStatus } = await import(pathToFileURL(path.join(DIST, 'migrations/runner.js')).href)

const now = () => Number(process.hrtime.bigint()) / 1e6
const BIN = pgBin()
const asPg = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : []
const sh = (argv, cwd = '/tmp') => {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout.toString()
}

// A throwaway cluster, loopback only, trust auth (nothing else can reach it).
const dir = tmp('mf-bench-mig-')
const data = path.join(dir, 'data')
mkdirSync(data, { mode: 0o700 })
if (asPg.length) { chownSync(dir, ...ids()); chownSync(data, ...ids()) }
function ids() {
  const [, , uid, gid] = sh(['getent', 'passwd', 'postgres']).trim().split(':')
  return [Number(uid), Number(gid)]
}
const { freePort } = await import(pathToFileURL(path.join(DIST, 'platform/ports.js')).href)
const port = await freePort()
sh([...asPg, `${BIN}/initdb`, '-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'])
sh([...asPg, `${BIN}/pg_ctl`, '-D', data, '-l', path.join(dir, 'pg.log'), '-w', 'start', '-o',
  `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c max_connections=50`])
const conn = (database) => ({ host: '127.0.0.1', port, user: 'postgres', password: 'trust', database })
const url = (database) => `postgres://postgres:trust@127.0.0.1:${port}/${database}`
async function sql(text, database = 'postgres') {
  const c = new pg.Client(conn(database))
  await c.connect()
  try { return await c.query(text) } finally { await c.end() }
}

// The anchor generator's migrations: a table and a row each.
const migDir = path.join(dir, 'migrations')
mkdirSync(migDir)
for (let i = 1; i <= N; i++) {
  writeFileSync(path.join(migDir, `${String(i).padStart(5, '0')}_create-t${i}.sql`),
    `CREATE TABLE t${i} (\n  id bigint PRIMARY KEY,\n  name text NOT NULL\n);\nINSERT INTO t${i} VALUES (1, 'row-${i}');\n`)
}

let dbs = 0
async function fresh() {
  const name = `b${++dbs}`
  await sql(`CREATE DATABASE ${name}`)
  return name
}

const raw = []
const mine = []
let lastDb
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const which of r % 2 ? ['magflock', 'raw'] : ['raw', 'magflock']) {
      const db = await fresh()
      const t0 = now()
      if (which === 'raw') {
        const applied = await rawMigrate({ ...conn(db), password: 'trust' }, migDir)
        if (applied.length !== N + 1) throw new Error(`raw applied ${applied.length}`)
        raw.push(now() - t0)
      } else {
        const res = await runMigrations({ connection: conn(db), dir: migDir })
        if (res.applied.length !== N) throw new Error(`magflock applied ${res.applied.length}`)
        mine.push(now() - t0)
        lastDb = db
      }
    }
  }

  // The CLI end to end (process start included), once, on a fresh database.
  const cliDb = await fresh()
  // The CLI from DIST: a root whose package.json points oclif at DIST/commands.
  const cliRoot = path.join(dir, 'root')
  mkdirSync(cliRoot)
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  pkg.oclif.commands = './dist/commands'
  writeFileSync(path.join(cliRoot, 'package.json'), JSON.stringify(pkg))
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(cliRoot, 'node_modules'))
  symlinkSync(path.join(ROOT, 'templates'), path.join(cliRoot, 'templates'))
  symlinkSync(path.resolve(DIST), path.join(cliRoot, 'dist'))
  const shim = path.join(dir, 'magflock.mjs')
  // A manifest, as a published build has (`npm run build` runs `oclif manifest`): without one
  // oclif imports every command module at start.
  sh([NODE, path.join(ROOT, 'node_modules/oclif/bin/run.js'), 'manifest'], cliRoot)
  writeFileSync(shim, `import module, { createRequire } from 'node:module'\nmodule.enableCompileCache?.()\nconst require = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})\nconst { execute } = require('@oclif/core')\nawait execute({ args: process.argv.slice(2), loadOptions: { root: ${JSON.stringify(cliRoot)} } })\n`)
  const cli = (args) => {
    const t0 = now()
    const r = spawnSync(NODE, [shim, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    if (r.status !== 0) throw new Error(`cli ${args.join(' ')}: ${r.stdout}${r.stderr}`)
    return now() - t0
  }
  const cliApply = cli(['db', 'migrate', '--db-url', url(cliDb), '--dir', migDir, '--json'])
  cli(['--version']) // warm the compile cache
  const cliNoop = cli(['--version'])

  // Status on N applied migrations.
  const statusIn = []
  for (let i = 0; i < 5; i++) {
    const t0 = now()
    const st = await migrationStatus({ connection: conn(lastDb), dir: migDir })
    if (st.applied.length !== N || !st.ok) throw new Error('status mismatch')
    statusIn.push(now() - t0)
  }
  const statusCli = []
  for (let i = 0; i < 3; i++) statusCli.push(cli(['db', 'migrate', 'status', '--db-url', url(lastDb), '--dir', migDir, '--json']))

  const sr = stats(raw), sm = stats(mine), ss = stats(statusIn), sc = stats(statusCli)
  const rate = (ms) => `${Math.round(N / (ms / 1000))}/s`
  const md = `## Migrations

\`node_modules/.bin/node bench/migrations-apply.mjs\` — ${machine()}.
${N} small migrations (a table and a row each, the anchor generator's), a fresh database per run, ${ROUNDS} alternating rounds;
PostgreSQL ${/\d+\.\d+/.exec(sh([`${BIN}/postgres`, '--version']))?.[0]} with fsync=off for both sides.

${table(['run', 'median', 'min', 'migrations/s (median)', 'vs baseline'], [
  ['postgres-migrations `migrate()` directly (baseline)', fmt(sr.p50), fmt(sr.min), rate(sr.p50), '1.00×'],
  ['MagFlock `runMigrations()` (lock + drift + lint + checks + library)', fmt(sm.p50), fmt(sm.min), rate(sm.p50), `${(sm.p50 / sr.p50).toFixed(2)}× (target ≤ 1.2×)`],
  ['`magflock db migrate --db-url` (CLI process, once)', fmt(cliApply), '', rate(cliApply), `CLI start alone (\`--version\`): ${fmt(cliNoop)}`],
])}

${table([`\`migrate status\` on ${N} applied`, 'median', 'min', 'target'], [
  ['in-process `migrationStatus()`', fmt(ss.p50), fmt(ss.min), '< 1 s'],
  ['`magflock db migrate status --db-url --json` (CLI process)', fmt(sc.p50), fmt(sc.min), '< 1 s'],
])}

The runner's own work (file loading and hashing, the lock, the drift check, the table and
index checks) is within noise of the library alone; it also reads the files the library then
reads again. The CLI rows include starting Node and oclif (the \`--version\` figure) and loading
zod, pg and postgres-migrations; \`status\` meets the 1 s target in-process, and the CLI's
wall time is dominated by that start-up on this machine.
`
  console.log(md)
  writeSection('migrations', md)
} finally {
  sh([...asPg, `${BIN}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', 'stop'])
  rmSync(dir, { recursive: true, force: true })
}
