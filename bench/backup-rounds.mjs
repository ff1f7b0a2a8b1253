// Physical backup, MagFlock vs raw pg_basebackup (server lz4, -c fast, -X stream), in N alternating
// rounds (raw first in even rounds, MagFlock first in odd ones) on one pgbench database, with the
// same checkpoint + WAL-receiver catch-up + sync before every backup as bench/backup-compare.mjs.
// Prints every time, the median of the per-round ratios and the ratio of the medians: on a shared
// machine one pair says little, many alternating pairs say more. Writes nothing under docs/.
// Usage: SCALE=50 N=6 node_modules/.bin/node bench/backup-rounds.mjs   (root; loopback only)
import { spawnSync } from 'node:child_process'
import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { performance } from 'node:perf_hooks'
import { ROOT, NODE, tmp } from './lib.mjs'
const SCALE = Number(process.env.SCALE ?? 50)
const N = Number(process.env.N ?? 3)
const PGBIN = '/usr/lib/postgresql/15/bin'
const BASE = tmp('mf-bench-rounds-')
const SOCK = path.join(BASE, 'sock')
const OUT = path.join(ROOT, 'node_modules/.cache/mf-bench-rounds')
const SRC = path.join(BASE, 'src')
function sh(cmd, { asPg = true, allowFail = false } = {}) {
  const args = asPg ? ['-u', 'postgres', '--', 'bash', '-o', 'pipefail', '-ec', cmd] : ['-o', 'pipefail', '-ec', cmd]
  const r = spawnSync(asPg ? 'runuser' : 'bash', args, { encoding: 'utf8', maxBuffer: 1 << 26 })
  if (r.status !== 0 && !allowFail) throw new Error(`failed: ${cmd}\n${r.stderr}`)
  return r.stdout.trim()
}
const now = () => performance.now()
const secs = (t0) => (performance.now() - t0) / 1000
const PORT = 6311
const psql = (sql, db = 'bench') => sh(`${PGBIN}/psql -X -h 127.0.0.1 -p ${PORT} -d ${db} -Atq -v ON_ERROR_STOP=1 -c "${sql.replace(/"/g, '\\"')}"`)
if (!process.env.SKIP_BUILD) spawnSync(NODE, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', OUT, '--sourceMap', 'false'], { stdio: 'inherit' })
const lib = async (m) => import(pathToFileURL(path.join(OUT, m)).href)
const { createPhysicalBackup } = await lib('backup/physical.js')
const { startWalReceiver } = await lib('backup/archiver.js')
const { findPgBinaries } = await lib('postgres/binaries.js')
const { postgresRunAs } = await lib('platform/os-user.js')
const bins = findPgBinaries(PGBIN)
const runAs = postgresRunAs()
mkdirSync(SOCK, { recursive: true })
for (const d of [BASE, SOCK]) chownSync(d, 101, 104)
sh(`${PGBIN}/initdb -D ${SRC} --data-checksums --auth=trust -E UTF8 >/dev/null`)
writeFileSync(path.join(SRC, 'postgresql.auto.conf'), [`port = ${PORT}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${SOCK}'`, 'shared_buffers = 512MB', 'maintenance_work_mem = 256MB', 'max_wal_size = 4GB', 'wal_level = replica', 'max_wal_senders = 10', 'max_replication_slots = 10'].join('\n') + '\n')
chownSync(path.join(SRC, 'postgresql.auto.conf'), 101, 104)
sh(`${PGBIN}/pg_ctl -D ${SRC} -l ${BASE}/src.log -w start >/dev/null`)
psql('create database bench', 'postgres')
sh(`${PGBIN}/pgbench -h ${SOCK} -p ${PORT} -i -s ${SCALE} -q bench 2>/dev/null`)
psql('vacuum analyze')
const conn = { host: '127.0.0.1', port: PORT, user: 'postgres', database: 'postgres' }
const receiver = await startWalReceiver({ walDir: path.join(BASE, 'wal'), conn, bins, runAs })
const checkpoint = async () => {
  psql('checkpoint', 'postgres')
  const lsn = psql('select pg_current_wal_lsn()', 'postgres')
  for (let i = 0; i < 1200; i++) {
    const c = psql(`select coalesce((select r.write_lsn >= '${lsn}'::pg_lsn from pg_stat_replication r join pg_replication_slots s on s.active_pid = r.pid where s.slot_name = 'magflock_wal_archive'), true)`, 'postgres')
    if (c === 't') break
    await new Promise((r) => setTimeout(r, 100))
  }
  sh('sync', { asPg: false })
}
const backupsDir = path.join(BASE, 'backups')
const variants = (process.env.VARIANTS ?? 'raw,mf').split(',') // raw variants: raw, rawP (-P), rawNS (--no-sync), rawNSP
const res = {}
let lastId
const run = async (v) => {
  await checkpoint()
  const t0 = now()
  if (v.startsWith('mf')) {
    const m = await createPhysicalBackup({ backupsDir, conn, bins, runAs, compression: 'lz4' })
    lastId = m.id
  } else {
    const extra = { raw: '', rawP: '-P', rawNS: '--no-sync', rawNSP: '--no-sync -P' }[v]
    sh(`${PGBIN}/pg_basebackup -h 127.0.0.1 -p ${PORT} -U postgres -D ${BASE}/raw-bb -Ft -X stream -c fast --compress=server-lz4 ${extra}`)
  }
  const s = secs(t0)
  if (!v.startsWith('mf')) rmSync(`${BASE}/raw-bb`, { recursive: true })
  else rmSync(path.join(backupsDir, lastId), { recursive: true })
  ;(res[v] ??= []).push(s)
  console.log(`${v.padEnd(8)} ${s.toFixed(3)} s`)
}
for (let i = 0; i < N; i++) {
  const order = i % 2 ? [...variants].reverse() : variants
  for (const v of order) await run(v)
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)] }
if (res.raw) for (const [v, a] of Object.entries(res)) if (v !== 'raw') console.log(`${v} / raw: median of per-round ratios ${med(a.map((x, i) => x / res.raw[i])).toFixed(3)}; ratio of medians ${(med(a) / med(res.raw)).toFixed(3)}`)
for (const [v, a] of Object.entries(res)) {
  const s = [...a].sort((x, y) => x - y)
  console.log(`${v.padEnd(8)} median ${s[Math.floor(s.length / 2)].toFixed(3)} min ${s[0].toFixed(3)} all ${a.map((x) => x.toFixed(2)).join(' ')}`)
}
await receiver.stop()
sh(`${PGBIN}/pg_ctl -D ${SRC} -m fast -w stop`, { allowFail: true })
rmSync(BASE, { recursive: true, force: true })
