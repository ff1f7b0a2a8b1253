// Physical backup to an S3-compatible server, side by side, ONE run on the same data:
//   magflock (pg_basebackup server-lz4 + AES-GCM, base.tar streamed into the repository while it
//   is written, the local repository written as usual, then the rest: manifest last)
//   vs a raw `pg_basebackup -Ft -D - | upload` pipeline (lib-storage multipart from stdin)
//   vs pgBackRest 2.x full backup (lz4) to the same server (HTTPS, self-signed, path style),
// in alternating order (A B C, C B A, …) to spread out autovacuum and page-cache effects; and the
// WAL archive size ratio (zstd, encrypted objects vs raw 16 MiB segments) after a pgbench run.
// The S3 server is s3rver (npm), its own process on 127.0.0.1 with TLS.
// Then PITR to a time from the object store until writable: magflock (backup read back from the
// repository, then restore + replay with WAL fetched on demand, decrypted and checked, with
// parallel prefetch: backup/repository/wal-serve.ts) vs pgBackRest restore
// --type=time from the same server (PITR=0 skips it).
// Usage: SCALE=10 ROUNDS=2 node_modules/.bin/node bench/backup-s3.mjs   (root; loopback only)
// Writes docs/benchmarks/backup-s3.md (then `node bench/merge.mjs`).
import { spawn, spawnSync } from 'node:child_process'
import pg from 'pg'
import { chownSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { ROOT, NODE, tmp, table, machine, writeSection } from './lib.mjs'

const SCALE = Number(process.env.SCALE ?? 10)
const ROUNDS = Number(process.env.ROUNDS ?? 2)
const PGBIN = process.env.PGBIN ?? '/usr/lib/postgresql/15/bin'
const BASE = tmp('mf-bench-s3-')
const SOCK = path.join(BASE, 'sock')
const SRC = path.join(BASE, 'src')
const OUT = path.join(ROOT, 'node_modules/.cache/mf-bench-s3')
const PORT = 6311
const PGBR_CONF = path.join(BASE, 'pgbackrest.conf')
const PGBR = ['pgbackrest', `--config=${PGBR_CONF}`, '--stanza=bench']

function sh(cmd, { asPg = true, allowFail = false } = {}) {
  const args = asPg ? ['-u', 'postgres', '--', 'bash', '-o', 'pipefail', '-ec', cmd] : ['-o', 'pipefail', '-ec', cmd]
  const r = spawnSync(asPg ? 'runuser' : 'bash', args, { encoding: 'utf8', maxBuffer: 1 << 26 })
  if (r.status !== 0 && !allowFail) throw new Error(`failed: ${cmd}\n${r.stderr}`)
  return r.stdout.trim()
}
const secs = (t0) => (performance.now() - t0) / 1000
const psql = (sql, db = 'bench') => sh(`${PGBIN}/psql -X -h 127.0.0.1 -p ${PORT} -d ${db} -Atq -v ON_ERROR_STOP=1 -c "${sql.replace(/"/g, '\\"')}"`)
function bytesUnder(p) {
  let s = 0
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, e.name)
    if (e.isDirectory()) s += bytesUnder(q)
    else if (e.isFile() && q.endsWith('._S3rver_object')) s += statSync(q).size
  }
  return s
}

if (!process.env.SKIP_BUILD) spawnSync(NODE, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', OUT, '--sourceMap', 'false'], { stdio: 'ignore' })
const lib = async (m) => import(pathToFileURL(path.join(OUT, m)).href)
const { createPhysicalBackup } = await lib('backup/physical.js')
const { kekFromSecret } = await lib('backup/crypto.js')
const { S3RepositoryConfig } = await lib('config/repository.js')
const { S3Repository } = await lib('backup/repository/s3.js')
const { RemotePush } = await lib('backup/repository/push.js')
const { newBackupId } = await lib('backup/manifest.js')
const { encodeWal, pushWalFile } = await lib('backup/repository/wal.js')
const { RemoteWalServer } = await lib('backup/repository/wal-serve.js')
const { assertRemoteLayout, remoteReader } = await lib('backup/repository/backups.js')
const { restorePhysical } = await lib('backup/restore.js')
const { segmentNo } = await lib('backup/wal.js')
const { startWalReceiver, waitForArchived } = await lib('backup/archiver.js')
const { findPgBinaries } = await lib('postgres/binaries.js')
const { postgresRunAs } = await lib('platform/os-user.js')
const { Upload } = await import('@aws-sdk/lib-storage')
const bins = findPgBinaries(PGBIN)
const runAs = postgresRunAs()

// ---------- S3 server with TLS (pgBackRest speaks only HTTPS to S3) ----------
const S3DIR = path.join(BASE, 's3')
mkdirSync(S3DIR, { recursive: true })
sh(`openssl req -x509 -newkey rsa:2048 -nodes -keyout ${BASE}/key.pem -out ${BASE}/cert.pem -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null`, { asPg: false })
const s3proc = spawn(NODE, ['--input-type=module', '-e', `
import S3rver from 's3rver'
import { readFileSync } from 'node:fs'
const s = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: ${JSON.stringify(S3DIR)}, key: readFileSync(${JSON.stringify(BASE + '/key.pem')}), cert: readFileSync(${JSON.stringify(BASE + '/cert.pem')}), configureBuckets: [{ name: 'bench' }] })
const a = await s.run()
console.log(JSON.stringify({ port: a.port }))
`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
const s3port = await new Promise((res) => s3proc.stdout.on('data', (c) => { const m = String(c).match(/"port":(\d+)/); if (m) res(Number(m[1])) }))
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0' // self-signed, loopback only
const endpoint = `https://127.0.0.1:${s3port}`
const repoCfg = S3RepositoryConfig.parse({ name: 'bench', type: 's3', endpoint, bucket: 'bench', prefix: 'magflock', accessKeyId: 'secret:x', secretAccessKey: 'secret:y' })
const repo = new S3Repository(repoCfg, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' })

// ---------- source cluster ----------
mkdirSync(SOCK, { recursive: true })
for (const d of [BASE, SOCK]) chownSync(d, 101, 104)
sh(`${PGBIN}/initdb -D ${SRC} --data-checksums --auth=trust -E UTF8 >/dev/null`)
writeFileSync(path.join(SRC, 'postgresql.auto.conf'), [
  `port = ${PORT}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${SOCK}'`, 'shared_buffers = 256MB', 'max_wal_size = 4GB',
  'wal_level = replica', 'max_wal_senders = 10', 'max_replication_slots = 10', 'archive_mode = on',
  `archive_command = 'pgbackrest --config=${PGBR_CONF} --stanza=bench archive-push %p'`,
].join('\n') + '\n')
chownSync(path.join(SRC, 'postgresql.auto.conf'), 101, 104)
for (const d of ['pgbr-log', 'pgbr-lock', 'pgbr-spool']) { mkdirSync(path.join(BASE, d), { recursive: true }); chownSync(path.join(BASE, d), 101, 104) }
writeFileSync(PGBR_CONF, `[global]
repo1-type=s3
repo1-s3-endpoint=127.0.0.1
repo1-s3-port=${s3port}
repo1-s3-bucket=bench
repo1-s3-region=us-east-1
repo1-s3-key=S3RVER
repo1-s3-key-secret=S3RVER
repo1-s3-uri-style=path
repo1-storage-verify-tls=n
repo1-path=/pgbackrest
repo1-retention-full=20
compress-type=lz4
process-max=2
start-fast=y
log-path=${BASE}/pgbr-log
lock-path=${BASE}/pgbr-lock
spool-path=${BASE}/pgbr-spool
log-level-console=warn

[bench]
pg1-path=${SRC}
pg1-port=${PORT}
pg1-socket-path=${SOCK}
`)
chownSync(PGBR_CONF, 101, 104)
sh(`${PGBIN}/pg_ctl -D ${SRC} -l ${BASE}/src.log -w start >/dev/null`)
psql('create database bench', 'postgres')
sh(`${PGBIN}/pgbench -h ${SOCK} -p ${PORT} -i -s ${SCALE} -q bench 2>/dev/null`)
psql('vacuum analyze')
const dbBytes = Number(psql("select pg_database_size('bench')"))
const conn = { host: '127.0.0.1', port: PORT, user: 'postgres', database: 'postgres' }
const pgbrVersion = sh('pgbackrest version', { asPg: false, allowFail: true }) || 'not installed'
let havePgbr = pgbrVersion.startsWith('pgBackRest')
if (havePgbr) {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', 'bash', '-c', `${PGBR.join(' ')} stanza-create && ${PGBR.join(' ')} check`], { encoding: 'utf8' })
  if (r.status !== 0) { console.error('pgBackRest cannot use the server:', r.stderr || r.stdout); havePgbr = false }
}
async function cleanup() {
  sh(`${PGBIN}/pg_ctl -D ${SRC} -m fast -w stop`, { allowFail: true })
  repo.destroy()
  s3proc.kill('SIGTERM')
  rmSync(BASE, { recursive: true, force: true })
}
process.on('uncaughtException', async (e) => { console.error(e); await cleanup().catch(() => {}); process.exit(1) })

const checkpoint = () => { psql('checkpoint', 'postgres'); sh('sync', { asPg: false }) }
const kek = kekFromSecret('bench-key')
const results = []
const rec = (tool, seconds, bytes) => {
  results.push({ tool, seconds, bytes })
  console.log(`${tool.padEnd(56)} ${seconds.toFixed(2)} s ${(bytes / 1048576).toFixed(0)} MiB`)
}
const runs = {
  async magflock() {
    const dir = path.join(BASE, 'mf')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const t0 = performance.now()
    const id = newBackupId('physical')
    const push = await RemotePush.begin(repo, dir, id)
    const m = await createPhysicalBackup({ backupsDir: dir, conn, bins, runAs, compression: 'lz4', encryption: { kek, secretName: 'backup.kek' }, id, tee: (_id, rel) => push.stream(rel) })
    const t1 = performance.now()
    await push.complete(path.join(dir, m.id), m)
    rec('magflock: backup (lz4, AES-GCM) streamed + upload of the rest, manifest last', secs(t0), m.totalBytes)
    console.log(`  of which after the local backup ${secs(t1).toFixed(2)} s`)
  },
  async raw() {
    const t0 = performance.now()
    const child = spawn('runuser', ['-u', 'postgres', '--', `${PGBIN}/pg_basebackup`, '-h', '127.0.0.1', '-p', String(PORT), '-U', 'postgres', '-D', '-', '-Ft', '-X', 'fetch', '-c', 'fast', '--no-manifest', '--compress=server-lz4'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let bytes = 0
    child.stdout.on('data', (c) => { bytes += c.length })
    const up = new Upload({ client: repo.client, params: { Bucket: 'bench', Key: `raw/${Date.now()}.tar.lz4`, Body: child.stdout }, partSize: 16 << 20, queueSize: 4 })
    await Promise.all([up.done(), new Promise((res, rej) => child.on('exit', (c) => (c === 0 ? res() : rej(new Error(`pg_basebackup ${c}`)))))])
    rec('raw: pg_basebackup -Ft -X fetch --no-manifest server-lz4 | upload', secs(t0), bytes)
  },
  async pgbackrest() {
    if (!havePgbr) return
    const before = bytesUnder(path.join(S3DIR, 'bench'))
    const t0 = performance.now()
    sh(`${PGBR.join(' ')} --type=full backup`)
    rec(`pgBackRest full (lz4, process-max=2) to the same server`, secs(t0), bytesUnder(path.join(S3DIR, 'bench')) - before)
  },
}
const order = Object.keys(runs)
const loadBefore = os.loadavg()[0]
for (let round = 0; round < ROUNDS; round++) {
  for (const name of round % 2 === 0 ? order : [...order].reverse()) {
    checkpoint()
    await runs[name]()
  }
}

// ---------- WAL archive size: a pgbench run, its closed segments as repository objects ----------
const walDir = path.join(BASE, 'wal')
const receiver = await startWalReceiver({ walDir, conn, bins, runAs })
// PITR bases (not timed), taken once the receiver streams, so the archive holds all WAL from
// their start: one MagFlock backup streamed into the repository, one pgBackRest full backup.
let pitrBase
if (process.env.PITR !== '0') {
  checkpoint()
  const dir = path.join(BASE, 'mf-pitr')
  mkdirSync(dir, { recursive: true })
  const id = newBackupId('physical')
  const push = await RemotePush.begin(repo, dir, id)
  pitrBase = await createPhysicalBackup({ backupsDir: dir, conn, bins, runAs, compression: 'lz4', encryption: { kek, secretName: 'backup.kek' }, id, tee: (_id, rel) => push.stream(rel) })
  await push.complete(path.join(dir, id), pitrBase)
  if (havePgbr) sh(`${PGBR.join(' ')} --type=full backup`)
}
const segsBefore = new Set(readdirSync(walDir))
sh(`${PGBIN}/pgbench -h ${SOCK} -p ${PORT} -T ${Number(process.env.WAL_SECONDS ?? 20)} -c 2 -j 2 bench >/dev/null 2>&1`)
// The PITR target: a time between two marker rows, after the load.
psql("create table pitr_marker(label text); insert into pitr_marker values ('before')")
await new Promise((r) => setTimeout(r, 500))
const target = psql('select clock_timestamp()')
await new Promise((r) => setTimeout(r, 500))
psql("insert into pitr_marker values ('after')")
const switched = psql('select pg_switch_wal()', 'postgres')
await waitForArchived(walDir, switched, 120_000)
await receiver.stop()
let raw = 0
let stored = 0
let segs = 0
for (const n of readdirSync(walDir).filter((x) => /^[0-9A-F]{24}$/.test(x) && !segsBefore.has(x))) {
  const b = readFileSync(path.join(walDir, n))
  raw += b.length
  stored += (await encodeWal(b, n, '1', { kek, secretName: 'backup.kek' })).length
  segs++
}
let pgbrWal = 0
if (havePgbr) {
  const walRoot = path.join(S3DIR, 'bench', 'pgbackrest', 'archive')
  pgbrWal = bytesUnder(walRoot)
}

// ---------- PITR from the object store until writable ----------
const pitr = []
/** MagFlock PITR: seconds until the backup was read back from the repository (of the total). */
const pitrRead = []
/**
 * Where each PITR's time went, from the restored server's log (log_line_prefix %m, log_checkpoints
 * on): seconds from the run's start until replay began, the target was reached, the end of
 * recovery was written (checkpoint or end-of-recovery record) and the server accepted connections.
 */
const pitrPhases = []
const LOG_MARKS = [
  ['redo', /redo starts at/],
  ['target', /recovery stopping (before|after)/],
  ['eorCkptStart', /checkpoint starting: end-of-recovery/],
  ['eorCkptDone', /checkpoint complete/],
  ['promoted', /archive recovery complete/],
  ['ready', /database system is ready to accept connections/],
]
function logPhases(file, t0Wall) {
  let text
  try { text = readFileSync(file, 'utf8') } catch { return {} }
  const out = {}
  for (const line of text.split('\n')) {
    const m = line.match(/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+)/)
    if (!m) continue
    for (const [k, re] of LOG_MARKS) {
      // The first end-of-recovery checkpoint's completion only; restartpoints don't count.
      if (k === 'eorCkptDone' && (out.eorCkptStart === undefined || out.eorCkptDone !== undefined)) continue
      if (out[k] === undefined && re.test(line)) out[k] = (Date.parse(m[1]) - t0Wall) / 1000
    }
  }
  return out
}
const fmtPhases = (p) => Object.entries(p).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')
if (process.env.PITR !== '0' && pitrBase) {
  const sysid = psql('select system_identifier::text from pg_control_system()', 'postgres')
  // What the wal-shipper does: every closed segment to the repository (zstd + encrypted).
  for (const n of readdirSync(walDir).filter((x) => /^[0-9A-F]{24}$/.test(x)).sort()) await pushWalFile(repo, walDir, n, sysid, { kek, secretName: 'backup.kek' })
  if (havePgbr) sh(`${PGBR.join(' ')} check`)
  const RPORT = PORT + 1
  const RS = path.join(BASE, 'restore', 'data')
  const stop = () => sh(`${PGBIN}/pg_ctl -D ${RS} -m immediate -w stop`, { allowFail: true })
  const fresh = () => {
    stop()
    rmSync(path.dirname(RS), { recursive: true, force: true })
    mkdirSync(path.dirname(RS), { mode: 0o755, recursive: true })
    chownSync(path.dirname(RS), 101, 104)
  }
  const waitRw = async () => {
    for (;;) {
      const c = new pg.Client({ host: '127.0.0.1', port: RPORT, user: 'postgres', database: 'postgres' })
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
  const pitrRuns = {
    async magflock() {
      fresh()
      const staging = path.join(BASE, 'staging')
      rmSync(staging, { recursive: true, force: true })
      mkdirSync(staging, { recursive: true, mode: 0o711 })
      checkpoint()
      const t0 = performance.now()
      const t0Wall = Date.now()
      // As restoreFromRepo does: the WAL server starts first (its first segments download
      // while the backup does), then restore_command asks it for each file during replay.
      const wal = await RemoteWalServer.start({ repos: [repo], sysid, fromSegNo: segmentNo(pitrBase.startLsn), timeline: pitrBase.timeline, spoolDir: path.join(staging, 'wal'), getKek: async () => kek, runAs })
      let t
      try {
        // As restoreFromRepo does for a new instance: only the manifest is staged; the objects
        // stream from the repository into extraction, hashed as they go.
        await assertRemoteLayout(repo, pitrBase)
        mkdirSync(path.join(staging, 'backups', pitrBase.id), { recursive: true, mode: 0o700 })
        writeFileSync(path.join(staging, 'backups', pitrBase.id, 'manifest.json'), JSON.stringify(pitrBase))
        const onProgress = (p) => { if (p.phase === 'start') pitrRead.push(secs(t0)) }
        await restorePhysical({ backupsDir: path.join(staging, 'backups'), id: pitrBase.id, reader: remoteReader(repo, pitrBase), dataDir: RS, port: RPORT, bins, runAs, kek, walDir: path.join(staging, 'wal'), remoteWal: { restoreCommand: wal.restoreCommand(), archive: wal.archive() }, targetTime: target, auth: { user: 'postgres' }, onProgress })
        await waitRw()
        t = secs(t0)
        console.log(`  WAL server: ${wal.stats.fetched} files fetched, ${wal.stats.served} handed out, ${wal.stats.missing} asked for and not in the repository`)
      } finally {
        await wal.close()
      }
      const got = sh(`${PGBIN}/psql -X -h 127.0.0.1 -p ${RPORT} -d bench -Atq -c "select string_agg(label, ',') from pitr_marker"`)
      if (got !== 'before') throw new Error(`magflock PITR: markers ${got}`)
      pitr.push({ tool: 'magflock', seconds: t })
      const ph = { extracted: pitrRead.at(-1), ...logPhases(path.join(path.dirname(RS), 'postgres.log'), t0Wall), writable: t }
      if (process.env.PITR_LOGS) copyFileSync(path.join(path.dirname(RS), 'postgres.log'), path.join(process.env.PITR_LOGS, `magflock-${pitr.length}.log`))
      pitrPhases.push({ tool: 'magflock', ...ph })
      console.log(`PITR magflock (backup from the object store, WAL on demand, decrypt, check, replay) ${t.toFixed(2)} s\n  phases (s from start): ${fmtPhases(ph)}`)
      stop()
      rmSync(staging, { recursive: true, force: true })
    },
    async pgbackrest() {
      if (!havePgbr) return
      fresh()
      mkdirSync(RS, { mode: 0o700 })
      chownSync(RS, 101, 104)
      checkpoint()
      const t0 = performance.now()
      const t0Wall = Date.now()
      sh(`${PGBR.join(' ')} --pg1-path=${RS} restore --type=time "--target=${target}" --target-action=promote`)
      const restored = secs(t0)
      sh(`${PGBIN}/pg_ctl -D ${RS} -l ${RS}.log -w -t 600 -o "-p ${RPORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${SOCK} -c archive_mode=off" start`)
      await waitRw()
      const t = secs(t0)
      const got = sh(`${PGBIN}/psql -X -h 127.0.0.1 -p ${RPORT} -d bench -Atq -c "select string_agg(label, ',') from pitr_marker"`)
      if (got !== 'before') throw new Error(`pgBackRest PITR: markers ${got}`)
      pitr.push({ tool: 'pgBackRest', seconds: t })
      const ph = { extracted: restored, ...logPhases(`${RS}.log`, t0Wall), writable: t }
      if (process.env.PITR_LOGS) copyFileSync(`${RS}.log`, path.join(process.env.PITR_LOGS, `pgbackrest-${pitr.length}.log`))
      pitrPhases.push({ tool: 'pgBackRest', ...ph })
      console.log(`PITR pgBackRest (restore --type=time from the object store + start) ${t.toFixed(2)} s\n  phases (s from start): ${fmtPhases(ph)}`)
      stop()
    },
  }
  // As many PITR rounds as backup rounds (PITR_ROUNDS overrides): with 3 the median is a middle run.
  for (let round = 0; round < Number(process.env.PITR_ROUNDS ?? ROUNDS); round++) {
    for (const name of round % 2 === 0 ? ['magflock', 'pgbackrest'] : ['pgbackrest', 'magflock']) await pitrRuns[name]()
  }
}

const loadAfter = os.loadavg()[0]
const by = (prefix) => results.filter((r) => r.tool.startsWith(prefix))
const med = (l) => { const s = l.map((r) => r.seconds).sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN }
const mf = med(by('magflock')), rw = med(by('raw')), br = med(by('pgBackRest'))
const rowsMd = [
  ['magflock backup (lz4 + AES-GCM) + upload', by('magflock').map((r) => r.seconds.toFixed(2)).join(' / '), `${(by('magflock')[0]?.bytes / 1048576).toFixed(0)} MiB`, '—'],
  ['raw `pg_basebackup \\| upload` (lz4, not encrypted)', by('raw').map((r) => r.seconds.toFixed(2)).join(' / '), `${(by('raw')[0]?.bytes / 1048576).toFixed(0)} MiB`, `magflock ${(mf / rw).toFixed(2)}×`],
  ...(havePgbr ? [['pgBackRest full (lz4, process-max=2)', by('pgBackRest').map((r) => r.seconds.toFixed(2)).join(' / '), `${(by('pgBackRest')[0]?.bytes / 1048576).toFixed(0)} MiB`, `magflock ${(mf / br).toFixed(2)}×`]] : []),
]
const pm = med(pitr.filter((r) => r.tool === 'magflock')), pb = med(pitr.filter((r) => r.tool === 'pgBackRest'))
const pitrMd = pitr.length
  ? `PITR to a time from the object store, until writable (${pitr.length / (havePgbr ? 2 : 1)} runs each, alternating order): MagFlock ${pitr.filter((r) => r.tool === 'magflock').map((r) => r.seconds.toFixed(2)).join(' / ')} s — a MagFlock backup (taken, like pgBackRest's, after the timed rounds and before the load) streamed from the repository into extraction (ranged GETs read ahead, hashed and decrypted as they stream), then replay to the target and promotion, the WAL fetched on demand by restore_command from the restore's WAL server (decrypted, zstd-decompressed, each file's sha256 checked; the next 8 segments prefetched, 4 downloads in parallel, the first ones during the extraction; of each run's time, reading and extracting the backup took ${pitrRead.map((x) => x.toFixed(2)).join(' / ')} s); ${havePgbr ? `pgBackRest ${pitr.filter((r) => r.tool === 'pgBackRest').map((r) => r.seconds.toFixed(2)).join(' / ')} s (\`restore --type=time\` from the same server, its own full backup taken right after MagFlock's base, then start until writable): **magflock ${(pm / pb).toFixed(2)}×**` : 'pgBackRest not available'}. Both check the target row: the restored database has the marker written before the target and not the one after.
`
  : 'PITR from the object store: not run (PITR=0).\n'
// Where each PITR run's time went (seconds from its start; from the restored server's log).
const phaseCols = [['extracted', 'backup read + extracted'], ['redo', 'replay starts'], ['target', 'target reached'], ['eorCkptDone', 'end-of-recovery checkpoint done'], ['ready', 'accepts writes'], ['writable', 'writable (client)']]
const phasesMd = pitrPhases.length
  ? `\n${table(['PITR run', ...phaseCols.map(([, h]) => h)], pitrPhases.map((p, i) => [`${p.tool} ${Math.floor(i / 2) + 1}`, ...phaseCols.map(([k]) => (p[k] === undefined ? '—' : p[k].toFixed(2)))]))}\n\nMagFlock's PITR pauses at the target and is promoted on request (an end-of-recovery record; the checkpoint runs after it accepts writes), so it has no "end-of-recovery checkpoint" column; pgBackRest's \`--target-action=promote\` waits for that checkpoint. "backup read + extracted" is pgBackRest's whole \`restore\` command (it fsyncs each file); MagFlock's extraction does not fsync (Postgres syncs the data dir when it starts from a backup: part of "replay starts").\n`
  : ''
const md = `## Backup to an S3-compatible server (issue 13)

\`SCALE=${SCALE} ROUNDS=${ROUNDS} node_modules/.bin/node bench/backup-s3.mjs\` — pgbench scale ${SCALE} (database ${(dbBytes / 1048576).toFixed(0)} MiB), PostgreSQL ${bins.version}, ${havePgbr ? pgbrVersion : 'pgBackRest could not use the server'}; S3 server: s3rver over HTTPS (self-signed) on 127.0.0.1, its own process; ${machine()}. Runs alternate order (A B C, C B A); times are per run; "vs" compares the upper median of each tool's runs (with two runs: the slower one), below 1 means MagFlock is faster. Load average (1 min) ${loadBefore.toFixed(1)} before the runs and ${loadAfter.toFixed(1)} after: the 2 CPUs were shared with other work, so single runs vary a lot; compare within a round.

${table(['backup to the S3 server', 'seconds (each run)', 'stored', 'vs'], rowsMd)}

WAL archive: ${segs} closed segments from ${process.env.WAL_SECONDS ?? 20} s of pgbench (2 clients): raw ${(raw / 1048576).toFixed(0)} MiB → ${(stored / 1048576).toFixed(1)} MiB as MagFlock repository objects (zstd level 3 + AES-GCM frames), ratio **${(stored / raw).toFixed(3)}**${havePgbr ? `; pgBackRest's archive (lz4) for the whole run holds ${(pgbrWal / 1048576).toFixed(1)} MiB (includes the WAL of its own backups)` : ''}.

MagFlock streams \`base.tar.lz4\` (encrypted) into the repository while pg_basebackup writes it — the same follower that encrypts and hashes it for the local repository feeds a multipart upload (four ${repoCfg.partSizeMiB} MiB parts in flight at most) — and uploads \`pg_wal.tar\` (16 MiB, pg_basebackup's \`-X stream\` output, written at the end) and \`backup_manifest\` once pg_basebackup is done, then checks the listing and writes manifest.json. What remains over the raw pipeline: that tail, the local copy (written, encrypted, hashed, fsynced), and encryption; the pipeline keeps no local copy, streams no WAL and does not encrypt.

${pitrMd}${phasesMd}`
writeSection('backup-s3', md)
console.log(md)
await cleanup()
process.exit(0)
