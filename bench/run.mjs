// Runs the benchmarks one after the other (never concurrently: these machines have 2 cores),
// then rebuilds docs/benchmarks.md from docs/benchmarks/*.md.
//
//   npm run bench                     # every benchmark below, in this order
//   npm run bench -- backup failover  # only those (names from the list below)
//
// Each benchmark writes its own section; see the header of each script for its knobs
// (SCALE, BENCH_RUNS, …), which pass through from the environment.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { ROOT, NODE, mergeBenchmarks } from './lib.mjs'

const BENCHES = {
  foundation: [NODE, ['bench/foundation.mjs']],
  'kernel-core': [NODE, ['bench/kernel-core.mjs']],
  config: [NODE, ['bench/config-vault.mjs']],
  postgres: [NODE, ['bench/postgres-instance.mjs']],
  migrations: [NODE, ['bench/migrations-apply.mjs']],
  backup: [NODE, ['bench/backup-compare.mjs']],
  'backup-s3': [NODE, ['bench/backup-s3.mjs']],
  failover: ['bash', ['bench/failover-compare.sh', 'all']],
  'replica-add': [NODE, ['bench/replica-add.mjs']],
  realtime: [NODE, ['bench/realtime.mjs']],
  pooler: [NODE, ['bench/pooler.mjs']],
  extensions: [NODE, ['bench/extensions.mjs']],
  events: [NODE, ['bench/events.mjs']],

  multihost: [NODE, ['bench/multihost.mjs']],
}

const wanted = process.argv.slice(2)
const unknown = wanted.filter((w) => !(w in BENCHES))
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from: ${Object.keys(BENCHES).join(', ')}`)
  process.exit(2)
}
const failed = []
for (const name of wanted.length > 0 ? wanted : Object.keys(BENCHES)) {
  const [cmd, args] = BENCHES[name]
  console.log(`\n== ${name}: ${path.basename(cmd)} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: process.env })
  if (r.status !== 0) failed.push(`${name} (exit ${r.status ?? r.signal})`)
}
mergeBenchmarks()
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(', ')}`)
  process.exit(1)
}
console.log('\ndocs/benchmarks.md rebuilt')
