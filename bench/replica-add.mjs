// replica add: a fresh pg_basebackup of the primary vs the latest physical backup + archived WAL.
//
//   npm run build && node bench/replica-add.mjs          # SCALE=20 RUNS=3 AFTER_S=10 by default
//
// One in-process kernel (its WAL archiver running) with a pgbench database of SCALE; a physical
// backup; then AFTER_S seconds of pgbench writes (the WAL the backup-seeded replica must replay
// from the archive); then RUNS alternating trials of `replica add` each way, timed from the call
// to "streaming", the replica removed after each. Writes docs/benchmarks/replica-add.md.
import { execFileSync } from 'node:child_process'
import { promises as fsp, writeFileSync } from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { fmt, freePort, log, machine, pgBin, ROOT, stats, table, tmp, writeSection } from './lib.mjs'

const DIST = process.env.MAGFLOCK_DIST ?? path.join(ROOT, 'dist')
const SCALE = Number(process.env.SCALE ?? 20)
const RUNS = Number(process.env.RUNS ?? 3)
const AFTER_S = Number(process.env.AFTER_S ?? 10)
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href)
const { startKernel } = await load('daemon/boot.js')
const { replicationManager } = await load('daemon/replication.js')
const { createBackup } = await load('backup/service.js')
const { SUPERUSER_SECRET } = await load('secrets/names.js')

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 6).toString('base64')

const dir = tmp('mf-bench-radd-')
const pgPort = await freePort()
const basePort = await freePort()
writeFileSync(path.join(dir, 'magflock.yaml'), `postgres:\n  port: ${pgPort}\nmetrics:\n  enabled: false\nreplication:\n  basePort: ${basePort}\n`)
const k = await startKernel({ stateDir: path.join(dir, '.magflock'), projectDir: dir })
try {
  const password = await k.services.secrets.get(SUPERUSER_SECRET)
  const env = { ...process.env, PGPASSWORD: password }
  const pgbench = (args) => execFileSync(path.join(pgBin(), 'pgbench'), ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', ...args, 'postgres'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  log(`pgbench -i -s ${SCALE}`)
  pgbench(['-i', '-q', '-s', String(SCALE)])
  const backup = await createBackup(k.services, { type: 'physical', encrypt: false })
  log(`backup ${backup.id}: ${(backup.sizeBytes / 2 ** 20).toFixed(0)} MiB compressed (${(backup.sourceBytes / 2 ** 20).toFixed(0)} MiB source) in ${backup.seconds.toFixed(1)} s`)
  pgbench(['-T', String(AFTER_S), '-c', '2', '-n'])
  const mgr = replicationManager(k.services)
  const samples = { primary: [], backup: [] }
  for (let i = 0; i < RUNS; i++) {
    for (const way of i % 2 === 0 ? ['primary', 'backup'] : ['backup', 'primary']) {
      const t0 = performance.now()
      const r = await mgr.add({ name: 'bench_r', ...(way === 'backup' ? { fromBackup: 'latest' } : {}) })
      const ms = performance.now() - t0
      samples[way].push(ms)
      log(`${way}: ${fmt(ms)} (${r.state})`)
      await mgr.remove('bench_r')
    }
  }
  const row = (label, s) => {
    const x = stats(s)
    return [label, fmt(x.p50), `${fmt(x.min)}–${fmt(s.reduce((a, b) => Math.max(a, b), 0))}`, String(x.n)]
  }
  writeSection(
    'replica-add',
    `## Replica add: pg_basebackup of the primary vs the latest physical backup\n\n` +
      `\`node bench/replica-add.mjs\` (SCALE=${SCALE}, RUNS=${RUNS}, AFTER_S=${AFTER_S}) — ${machine()}.\n` +
      `A pgbench database of scale ${SCALE} (${(backup.sourceBytes / 2 ** 20).toFixed(0)} MiB), a physical backup (lz4), then ${AFTER_S} s of pgbench writes; ` +
      `time from \`replica add\` to the replica streaming, alternating the two ways.\n\n` +
      table(['way', 'median', 'range', 'n'], [row('`replica add` (pg_basebackup -X stream from the primary)', samples.primary), row('`replica add --from-backup latest` (verify + extract + archived WAL)', samples.backup)]) +
      '\n',
  )
  log('wrote docs/benchmarks/replica-add.md')
} finally {
  await k.shutdown({ keepPostgres: false, reason: 'bench' })
  await fsp.rm(dir, { recursive: true, force: true })
}
