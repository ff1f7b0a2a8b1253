// Backup/restore side by side, ONE run on the same data (see ../shared/anchors/backup/):
//   magflock physical lz4 / physical lz4+AES-GCM / logical   vs   raw pg_basebackup (server lz4),
//   pg_dump -Fd -j2 / pg_restore -j2, pgBackRest 2.x full lz4, and PITR to writable (magflock vs pgBackRest).
// Usage: SCALE=50 node_modules/.bin/node bench/backup-compare.mjs   (root; loopback only)
// Writes docs/benchmarks/backup.md.
// QUICK=1 (for iterating): no pgBackRest, no PITR, nothing written under docs/; PHASES=1 prints
// when each magflock phase started (where the time goes).
import { spawnSync } from 'node:child_process'
import { chownSync, mkdirSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { ROOT, NODE, tmp, table, machine, writeSection } from './lib.mjs'

const SCALE = Number(process.env.SCALE ?? 50)
const QUICK = Boolean(process.env.QUICK)
const PGBIN = process.env.PGBIN ?? '/usr/lib/postgresql/15/bin'
const BASE = tmp('mf-bench-backup-')
const SOCK = path.join(BASE, 'sock')
const OUT = path.join(ROOT, 'node_modules/.cache/mf-bench-backup')
const SRC = path.join(BASE, 'src')
const PGBR_CONF = path.join(BASE, 'pgbackrest.conf')
const PGBR = ['pgbackrest', `--config=${PGBR_CONF}`, '--stanza=bench']

function sh(cmd, { asPg = true, allowFail = false } = {}) {
  const args = asPg ? ['-u', 'postgres', '--', 'bash', '-o', 'pipefail', '-ec', cmd] : ['-o', 'pipefail', '-ec', cmd]
  const r = spawnSync(asPg ? 'runuser' : 'bash', args, { encoding: 'utf8', maxBuffer: 1 << 26 })
  if (r.status !== 0 && !allowFail) throw new Error(`failed: ${cmd}\n${r.stderr}`)
  return r.stdout.trim()
}
const now = () => performance.now()
const secs = (t0) => (performance.now() - t0) / 1000
function bytesOf(p) {
  let s = 0
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const q = path.join(d, e.name)
      if (e.isDirectory()) walk(q)
      else if (e.isFile()) s += statSync(q).size
    }
  }
  if (statSync(p).isDirectory()) walk(p)
  else s = statSync(p).size
  return s
}
const psql = (sql, db = 'bench', port = PORT) => sh(`${PGBIN}/psql -X -h 127.0.0.1 -p ${port} -d ${db} -Atq -v ON_ERROR_STOP=1 -c "${sql.replace(/"/g, '\\"')}"`)
async function waitRw(port) {
  for (;;) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' })
    try {
      await c.connect()
      const r = await c.query('select pg_is_in_recovery() as r')
      await c.end()
      if (r.rows[0].r === false) return
    } catch {
      await c.end().catch(() => {})
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}
function freshDir(d) {
  sh(`${PGBIN}/pg_ctl -D ${d} -m immediate -w stop`, { allowFail: true })
  rmSync(d, { recursive: true, force: true })
  mkdirSync(path.dirname(d), { mode: 0o755, recursive: true })
  chownSync(path.dirname(d), 101, 104)
  mkdirSync(d, { mode: 0o700 })
  chownSync(d, 101, 104)
}
const startRestored = (d, port) =>
  sh(`${PGBIN}/pg_ctl -D ${d} -l ${d}.log -w -t 600 -o "-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${SOCK} -c archive_mode=off" start`)
const stop = (d) => sh(`${PGBIN}/pg_ctl -D ${d} -m immediate -w stop`, { allowFail: true })
const rows = (port, db = 'bench') => Number(psql('select count(*) from pgbench_accounts', db, port))

// ---------- build our library into a private dir (never touches dist/) ----------
if (!process.env.SKIP_BUILD) spawnSync(NODE, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', OUT, '--sourceMap', 'false'], { stdio: 'ignore' })
const lib = async (m) => import(pathToFileURL(path.join(OUT, m)).href)
const { createPhysicalBackup } = await lib('backup/physical.js')
const { createLogicalBackup, restoreLogical } = await lib('backup/logical.js')
const { restorePhysical } = await lib('backup/restore.js')
const { startWalReceiver, waitForArchived } = await lib('backup/archiver.js')
const { kekFromSecret } = await lib('backup/crypto.js')
const { findPgBinaries } = await lib('postgres/binaries.js')
const { postgresRunAs } = await lib('platform/os-user.js')
const bins = findPgBinaries(PGBIN)
const runAs = postgresRunAs()

// ---------- source cluster ----------
const PORT = 6301
const RPORT = 6302
const RS = path.join(BASE, 'restore', 'data')
mkdirSync(SOCK, { recursive: true })
for (const d of [BASE, SOCK]) chownSync(d, 101, 104)
sh(`${PGBIN}/initdb -D ${SRC} --data-checksums --auth=trust -E UTF8 >/dev/null`)
writeFileSync(
  path.join(SRC, 'postgresql.auto.conf'),
  [
    `port = ${PORT}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${SOCK}'`, 'shared_buffers = 512MB',
    'maintenance_work_mem = 256MB', 'max_wal_size = 4GB', 'wal_level = replica', 'max_wal_senders = 10', 'max_replication_slots = 10',
    ...(QUICK ? [] : ['archive_mode = on', `archive_command = 'pgbackrest --config=${PGBR_CONF} --stanza=bench archive-push %p'`]),
  ].join('\n') + '\n',
)
chownSync(path.join(SRC, 'postgresql.auto.conf'), 101, 104)
sh(`${PGBIN}/pg_ctl -D ${SRC} -l ${BASE}/src.log -w start >/dev/null`)
psql('create database bench', 'postgres')
sh(`${PGBIN}/pgbench -h ${SOCK} -p ${PORT} -i -s ${SCALE} -q bench 2>/dev/null`)
psql('vacuum analyze')
const dbBytes = Number(psql("select pg_database_size('bench')"))
const conn = { host: '127.0.0.1', port: PORT, user: 'postgres', database: 'postgres' }
const walDir = path.join(BASE, 'wal')
const receiver = await startWalReceiver({ walDir, conn, bins, runAs })
async function cleanup() {
  await receiver.stop()
  stop(RS)
  sh(`${PGBIN}/pg_ctl -D ${SRC} -m fast -w stop`, { allowFail: true })
  rmSync(BASE, { recursive: true, force: true })
}
process.on('unhandledRejection', async (e) => {
  console.error(e)
  await cleanup().catch(() => {})
  process.exit(1)
})
process.on('SIGINT', async () => {
  await cleanup().catch(() => {})
  process.exit(130)
})
process.on('uncaughtException', async (e) => {
  console.error(e)
  await cleanup().catch(() => {})
  process.exit(1)
})

// pgBackRest repo
for (const d of ['repo', 'pgbr-log', 'pgbr-lock', 'pgbr-spool']) {
  mkdirSync(path.join(BASE, d), { recursive: true })
  chownSync(path.join(BASE, d), 101, 104)
}
writeFileSync(
  PGBR_CONF,
  `[global]\nrepo1-path=${BASE}/repo\nrepo1-retention-full=20\nprocess-max=2\nstart-fast=y\nlog-path=${BASE}/pgbr-log\nlock-path=${BASE}/pgbr-lock\nspool-path=${BASE}/pgbr-spool\nlog-level-console=warn\n\n[bench]\npg1-path=${SRC}\npg1-port=${PORT}\npg1-socket-path=${SOCK}\n`,
)
chownSync(PGBR_CONF, 101, 104)
const pgbrVersion = (!QUICK && sh('pgbackrest version', { asPg: false, allowFail: true })) || 'not installed'
const havePgbr = pgbrVersion.startsWith('pgBackRest')
if (havePgbr) sh(`${PGBR.join(' ')} stanza-create && ${PGBR.join(' ')} check`)

const results = [] // {op, tool, seconds, bytes}
const rec = (op, tool, seconds, bytes) => {
  results.push({ op, tool, seconds, bytes })
  console.log(`${op.padEnd(10)} ${tool.padEnd(48)} ${seconds.toFixed(2)} s ${bytes ? (bytes / 1048576).toFixed(0) + ' MiB' : ''}`)
}
// As the anchor does (checkpoint_sync): flush the previous step's dirty pages so that one
// measurement does not pay for the writeback of the one before.
// Then wait until the WAL receiver and pgBackRest's archive_command have caught up: the
// logical restores write ~2× the database into WAL, and archiving it (pgBackRest compresses
// every segment) on a 2-core machine would otherwise be billed to whichever step runs next.
const checkpoint = async () => {
  psql('checkpoint', 'postgres')
  const lsn = psql('select pg_current_wal_lsn()', 'postgres')
  for (let i = 0; i < 1200; i++) {
    const caughtUp = psql(
      // write_lsn: pg_receivewal fsyncs (and so reports flush) only when a segment completes.
      `select coalesce((select r.write_lsn >= '${lsn}'::pg_lsn from pg_stat_replication r join pg_replication_slots s on s.active_pid = r.pid
                         where s.slot_name = 'magflock_wal_archive'), true)
          and (select count(*) = 0 from pg_ls_archive_statusdir() where name like '%.ready')`,
      'postgres',
    )
    if (caughtUp === 't') break
    await new Promise((r) => setTimeout(r, 100))
  }
  sh('sync', { asPg: false })
}
// PHASES=1: print when each phase of a magflock operation starts.
const phases = (what) => {
  if (!process.env.PHASES) return undefined
  const t = now()
  let last = ''
  return (p) => {
    if (p.phase !== last) console.log(`  ${what}: ${p.phase} at +${secs(t).toFixed(2)} s (${p.message ?? ''})`)
    last = p.phase
  }
}
const withPhases = (what) => {
  const f = phases(what)
  return f ? { onProgress: f } : {}
}

// An untimed run of the raw tool before each timed pair: whatever the previous step left behind
// (the freeing of a dropped database's files, autovacuum or analyze of a restored copy, a cold
// cache) is then paid by the warm-up, not by whichever side of the pair happens to run first.
// Without it the side run first lost in every pass of every run (pass 2 up to 1.2–1.4×).
const warmUp = async (kind) => {
  await checkpoint()
  const dir = `${BASE}/warm-up`
  rmSync(dir, { recursive: true, force: true })
  if (kind === 'physical') sh(`${PGBIN}/pg_basebackup -h 127.0.0.1 -p ${PORT} -U postgres -D ${dir} -Ft -X stream -c fast --compress=server-lz4`)
  else sh(`${PGBIN}/pg_dump -h 127.0.0.1 -p ${PORT} -U postgres -Fd -j2 -f ${dir} bench`)
  rmSync(dir, { recursive: true, force: true })
}

// ---------- raw pg_basebackup, server lz4 ----------
await warmUp('physical')
await checkpoint()
let t0 = now()
sh(`${PGBIN}/pg_basebackup -h 127.0.0.1 -p ${PORT} -U postgres -D ${BASE}/raw-bb -Ft -X stream -c fast --compress=server-lz4`)
rec('backup', 'pg_basebackup -Ft server-lz4 (raw)', secs(t0), bytesOf(`${BASE}/raw-bb`))
freshDir(RS)
await checkpoint()
t0 = now()
sh(`lz4 -dc ${BASE}/raw-bb/base.tar.lz4 | tar -xf - -C ${RS} && tar -xf ${BASE}/raw-bb/pg_wal.tar -C ${RS}/pg_wal`)
startRestored(RS, RPORT)
rec('restore', 'pg_basebackup -Ft server-lz4 (raw)', secs(t0))
if (rows(RPORT) !== SCALE * 100000) throw new Error('raw restore: wrong row count')
stop(RS)
rmSync(`${BASE}/raw-bb`, { recursive: true })

// ---------- magflock physical lz4 and encrypted ----------
const backupsDir = path.join(BASE, 'backups')
const kek = kekFromSecret('bench-kek')
for (const enc of [false, true]) {
  await checkpoint()
  t0 = now()
  const m = await createPhysicalBackup({ backupsDir, conn, bins, runAs, compression: 'lz4', ...withPhases('backup'), ...(enc ? { encryption: { kek, secretName: 'backup.kek' } } : {}) })
  const label = `magflock physical lz4${enc ? ' + AES-256-GCM' : ''}`
  rec('backup', label, secs(t0), m.totalBytes)
  stop(RS)
  rmSync(path.dirname(RS), { recursive: true, force: true })
  await checkpoint()
  t0 = now()
  await restorePhysical({ backupsDir, id: m.id, dataDir: RS, port: RPORT, bins, runAs, kek: enc ? kek : undefined, auth: { user: 'postgres' }, ...withPhases('restore') })
  rec('restore', label + ' (hash while extracting + start)', secs(t0))
  if (rows(RPORT) !== SCALE * 100000) throw new Error('magflock restore: wrong row count')
  stop(RS)
}

// ---------- logical ----------
await warmUp('logical')
await checkpoint()
t0 = now()
sh(`${PGBIN}/pg_dump -h 127.0.0.1 -p ${PORT} -U postgres -Fd -j2 -f ${BASE}/raw-dump bench`)
rec('backup', 'pg_dump -Fd -j2, gzip (raw)', secs(t0), bytesOf(`${BASE}/raw-dump`))
await checkpoint()
t0 = now()
psql('create database raw_copy template template0', 'postgres')
sh(`${PGBIN}/pg_restore -h 127.0.0.1 -p ${PORT} -U postgres -j2 -d raw_copy ${BASE}/raw-dump`)
rec('restore', 'pg_restore -j2 (raw)', secs(t0))
psql('drop database raw_copy', 'postgres')
rmSync(`${BASE}/raw-dump`, { recursive: true })
await checkpoint()
t0 = now()
const lm = await createLogicalBackup({ backupsDir, conn, database: 'bench', bins, runAs, jobs: 2, ...withPhases('logical backup') })
rec('backup', 'magflock logical (pg_dump -Fd -j2, gzip)', secs(t0), lm.totalBytes)
await checkpoint()
t0 = now()
await restoreLogical({ backupsDir, id: lm.id, conn, targetDb: 'mf_copy', bins, runAs, jobs: 2, ...withPhases('logical restore') })
rec('restore', 'magflock logical (hash, then pg_restore -j2)', secs(t0))
if (rows(PORT, 'mf_copy') !== SCALE * 100000) throw new Error('logical restore: wrong row count')
psql('drop database mf_copy', 'postgres')

// ---------- second pass in the reverse order (backups only): magflock first, then the raw tool ----------
// The first pass always runs the raw tool first; an autovacuum or writeback left over from an
// earlier step would then weigh on one side only. Each pair is compared within its pass.
await warmUp('logical')
await checkpoint()
t0 = now()
const lm2 = await createLogicalBackup({ backupsDir, conn, database: 'bench', bins, runAs, jobs: 2 })
rec('backup', 'magflock logical (pg_dump -Fd -j2, gzip), pass 2 (run first)', secs(t0), lm2.totalBytes)
await checkpoint()
t0 = now()
sh(`${PGBIN}/pg_dump -h 127.0.0.1 -p ${PORT} -U postgres -Fd -j2 -f ${BASE}/raw-dump2 bench`)
rec('backup', 'pg_dump -Fd -j2, gzip (raw), pass 2 (run second)', secs(t0), bytesOf(`${BASE}/raw-dump2`))
rmSync(`${BASE}/raw-dump2`, { recursive: true })
await warmUp('physical')
await checkpoint()
t0 = now()
const pm2 = await createPhysicalBackup({ backupsDir, conn, bins, runAs, compression: 'lz4' })
rec('backup', 'magflock physical lz4, pass 2 (run first)', secs(t0), pm2.totalBytes)
await checkpoint()
t0 = now()
sh(`${PGBIN}/pg_basebackup -h 127.0.0.1 -p ${PORT} -U postgres -D ${BASE}/raw-bb2 -Ft -X stream -c fast --compress=server-lz4`)
rec('backup', 'pg_basebackup -Ft server-lz4 (raw), pass 2 (run second)', secs(t0), bytesOf(`${BASE}/raw-bb2`))
rmSync(`${BASE}/raw-bb2`, { recursive: true })

// ---------- pgBackRest full lz4 ----------
if (havePgbr) {
  await checkpoint()
  t0 = now()
  sh(`${PGBR.join(' ')} backup --type=full --compress-type=lz4`)
  rec('backup', `${pgbrVersion} full lz4 (process-max 2)`, secs(t0), bytesOf(`${BASE}/repo/backup`))
  freshDir(RS)
  await checkpoint()
  t0 = now()
  sh(`${PGBR.join(' ')} --pg1-path=${RS} restore`)
  startRestored(RS, RPORT)
  rec('restore', `${pgbrVersion} full lz4 (restore+start)`, secs(t0))
  stop(RS)
}

// ---------- PITR to writable (not with QUICK): a time between two writes after some load ----------
// A fresh magflock base taken at the same point as pgBackRest's full backup above, so both
// replay the same WAL (the logical restores above wrote ~2× the database into WAL).
if (!QUICK) {
  await checkpoint()
  const base = await createPhysicalBackup({ backupsDir, conn, bins, runAs, compression: 'lz4' })
  sh(`${PGBIN}/pgbench -h ${SOCK} -p ${PORT} -c 2 -j 2 -T 10 -n bench >/dev/null 2>&1`)
  psql("create table pitr_marker(label text, ts timestamptz default clock_timestamp()); insert into pitr_marker(label) values ('before')")
  await new Promise((r) => setTimeout(r, 500))
  const target = psql('select clock_timestamp()')
  await new Promise((r) => setTimeout(r, 500))
  psql("insert into pitr_marker(label) values ('after')")
  const lsn = psql('select pg_switch_wal()', 'postgres')
  await waitForArchived(walDir, lsn, 120_000)
  if (havePgbr) sh(`${PGBR.join(' ')} check`)
  stop(RS)
  rmSync(path.dirname(RS), { recursive: true, force: true })
  await checkpoint()
  t0 = now()
  await restorePhysical({ backupsDir, id: base.id, dataDir: RS, port: RPORT, bins, runAs, walDir, targetTime: target, auth: { user: 'postgres' } })
  rec('pitr', 'magflock PITR to a time, until writable', secs(t0))
  if (psql("select string_agg(label, ',') from pitr_marker", 'bench', RPORT) !== 'before') throw new Error('magflock PITR: wrong markers')
  stop(RS)
  if (havePgbr) {
    freshDir(RS)
    await checkpoint()
    t0 = now()
    sh(`${PGBR.join(' ')} --pg1-path=${RS} restore --type=time "--target=${target}" --target-action=promote`)
    startRestored(RS, RPORT)
    await waitRw(RPORT)
    rec('pitr', 'pgBackRest PITR to a time, until writable', secs(t0))
    if (psql("select string_agg(label, ',') from pitr_marker", 'bench', RPORT) !== 'before') throw new Error('pgBackRest PITR: wrong markers')
    stop(RS)
  }
}

await cleanup()

// ---------- report ----------
const find = (op, tool) => results.find((r) => r.op === op && r.tool.startsWith(tool))
const ratio = (a, b) => (a && b ? `${(a.seconds / b.seconds).toFixed(2)}×` : '')
const baseline = {
  'backup:magflock logical (pg_dump -Fd -j2, gzip), pass 2': find('backup', 'pg_dump -Fd -j2, gzip (raw), pass 2'),
  'backup:magflock physical lz4, pass 2': find('backup', 'pg_basebackup -Ft server-lz4 (raw), pass 2'),
  'backup:magflock physical lz4 + AES': find('backup', 'magflock physical lz4'),
  'backup:magflock physical lz4': find('backup', 'pg_basebackup'),
  'restore:magflock physical lz4 + AES': find('restore', 'magflock physical lz4 (hash'),
  'restore:magflock physical lz4': find('restore', 'pg_basebackup'),
  'backup:magflock logical': find('backup', 'pg_dump'),
  'restore:magflock logical': find('restore', 'pg_restore'),
  'pitr:magflock': find('pitr', 'pgBackRest'),
}
const mbps = (r) => (r.seconds > 0 ? (dbBytes / 1048576 / r.seconds).toFixed(0) : '')
const rowsMd = results.map((r) => {
  const key = Object.keys(baseline).find((k) => `${r.op}:${r.tool}`.startsWith(k))
  return [r.op, r.tool, `${r.seconds.toFixed(2)} s`, mbps(r), r.bytes ? `${(r.bytes / 1048576).toFixed(0)} MiB` : '', key ? ratio(r, baseline[key]) : '']
})
const md = `## Backup and restore (\`bench/backup-compare.mjs\`)

\`SCALE=${SCALE} node_modules/.bin/node bench/backup-compare.mjs\` — pgbench scale ${SCALE} (database ${(dbBytes / 1048576).toFixed(0)} MiB), PostgreSQL ${bins.version}, ${pgbrVersion}; ${machine()}. One run, everything on the same data; the backups of both tools run twice, raw tool first in pass 1 and MagFlock first in pass 2 (each pair compared within its pass), each pair after an untimed warm-up run of the raw tool; load average (1 min) ${os.loadavg()[0].toFixed(1)} at the end (the 2 CPUs were shared with other work); MiB/s is database size ÷ time. "vs" compares with the raw tool at the same settings (encrypted: vs magflock unencrypted; PITR: vs pgBackRest).

${table(['op', 'tool', 'time', 'MiB/s', 'size', 'vs'], rowsMd)}

Restore times run until the instance accepts connections (PITR: until \`pg_is_in_recovery()\` is false). MagFlock's physical restore includes hashing every backup file against its manifest while extracting it, and the key check; its logical restore hashes the dump before pg_restore. Both sides of each comparison use the same compression: server-side lz4 for pg_basebackup, gzip for pg_dump (PostgreSQL 15's only method for the directory format). Before each step the bench checkpoints and waits until the WAL receiver (and pgBackRest's archive_command) have caught up, so no step pays for the previous one's WAL.
`
if (!QUICK) writeSection('backup', md)
console.log(md)
