import { promises as fsp } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import type { OsUser } from '../platform/os-user.js'
import { run } from '../platform/process.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { BACKUP_INVALID, BACKUP_RECOVERY_FAILED, BACKUP_TARGET_EXISTS, BACKUP_WAL_MISSING } from './errors.js'
import { extractPhysical } from './extract.js'
import { openBackupKey } from './keys.js'
import type { OnProgress } from './tools.js'
import { assertLayout, assertVerified } from './verify.js'
import { firstMissingSegment, listArchive, restoreCommand } from './wal.js'
import { isProcessAliveSync } from '../platform/pids.js'

/**
 * Physical restore into a NEW data dir (and port), optionally to a point in time:
 *   key check → layout check → WAL-archive gap check → extract while hashing → recovery
 *   settings → start → wait until writable.
 * Every refusal (wrong key, missing or resized file, missing WAL, existing target) happens
 * before a single file is written to the target; a file whose hash does not match is found
 * during extraction, and what was extracted is deleted before Postgres could start on it.
 */
export interface PhysicalRestoreOptions {
  backupsDir: string
  id: string
  dataDir: string
  port: number
  bins: PgBinaries
  runAs?: OsUser | undefined
  kek?: Buffer | undefined
  /** Replace an existing (stopped) data dir. A running one is always refused. */
  force?: boolean
  /** WAL archive for PITR (`<state>/wal`). */
  walDir?: string
  targetTime?: string
  targetLsn?: string
  /** Start the instance and wait until it accepts writes (default true). */
  start?: boolean
  /** Superuser credentials of the backed-up instance, to check it is writable. */
  auth?: { user: string; password?: string | undefined }
  /** Server log (default: <dirname(dataDir)>/postgres.log). */
  logFile?: string
  timeoutMs?: number
  onProgress?: OnProgress
}

export interface PhysicalRestoreResult {
  id: string
  dataDir: string
  port: number
  started: boolean
  pitr: { targetTime?: string; targetLsn?: string } | null
  logFile: string
  seconds: number
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$/i

const RESTORED_SETTINGS = (port: number, socketDir: string): Record<string, string> => ({
  port: String(port),
  listen_addresses: "'127.0.0.1'",
  unix_socket_directories: `'${socketDir.replace(/'/g, "''")}'`,
  // A restored copy must never push WAL into the archive of the instance it came from.
  archive_mode: "'off'",
  cluster_name: "'magflock-restore'",
})

async function postmasterAlive(dataDir: string): Promise<boolean> {
  try {
    const pid = Number((await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    return isProcessAliveSync(pid)
  } catch {
    return false
  }
}

export async function restorePhysical(o: PhysicalRestoreOptions): Promise<PhysicalRestoreResult> {
  const t0 = Date.now()
  const progress = o.onProgress ?? (() => undefined)
  const { dir, manifest, dataKey } = await openBackupKey(o.backupsDir, o.id, o.kek)
  if (manifest.type !== 'physical') throw BACKUP_INVALID({ message: `Backup ${o.id} is logical; restore it with --to-db.` })
  if (o.targetTime && o.targetLsn) throw BACKUP_INVALID({ message: 'Give --target-time or --target-lsn, not both.' })
  if (o.targetTime && !TIME_RE.test(o.targetTime.trim())) {
    throw BACKUP_INVALID({ message: `--target-time "${o.targetTime}" is not a timestamp (e.g. "2026-11-25 10:00:00+00").` })
  }
  if (o.targetLsn && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(o.targetLsn)) {
    throw BACKUP_INVALID({ message: `--target-lsn "${o.targetLsn}" is not an LSN (e.g. 0/3000060).` })
  }
  const pitr = Boolean(o.targetTime || o.targetLsn)
  if (pitr && !o.walDir) throw BACKUP_INVALID({ message: 'Point-in-time restore needs the WAL archive directory.' })

  // The target: never a running instance; an existing one only with force.
  const existing = await fsp.readdir(o.dataDir).catch(() => [] as string[])
  if (existing.length > 0) {
    if (await postmasterAlive(o.dataDir)) throw BACKUP_TARGET_EXISTS({ what: 'running instance at', name: o.dataDir })
    if (!o.force) throw BACKUP_TARGET_EXISTS({ what: 'data directory', name: o.dataDir })
  }

  // Verification: over an existing data dir, a full re-hash first (what is there must survive a
  // damaged backup); into a new one, the cheap layout check now and the hashes while extracting
  // (one read of the backup), deleting the target on a mismatch before Postgres ever starts.
  if (existing.length > 0) await assertVerified(o.backupsDir, o.id, progress)
  else await assertLayout(dir, manifest)

  if (pitr && o.walDir) {
    const archive = await listArchive(o.walDir)
    const missing = firstMissingSegment(archive, manifest.timeline, manifest.stopLsn, o.targetLsn)
    if (missing) throw BACKUP_WAL_MISSING({ segment: missing, walDir: o.walDir })
  }

  if (existing.length > 0) await fsp.rm(o.dataDir, { recursive: true, force: true })
  // The parent holds the socket and the log, so the postgres OS user must own it when we made it.
  const parent = path.dirname(o.dataDir)
  const madeParent = await fsp.mkdir(parent, { recursive: true })
  if (madeParent && o.runAs) await fsp.chown(parent, o.runAs.uid, o.runAs.gid)
  await fsp.mkdir(o.dataDir, { mode: 0o700 })
  await fsp.chmod(o.dataDir, 0o700)
  if (o.runAs) await fsp.chown(o.dataDir, o.runAs.uid, o.runAs.gid)

  const total = manifest.files.reduce((s, f) => s + f.size, 0)
  let done = 0
  let last = 0
  try {
    progress({ phase: 'extract', message: 'extracting', bytesDone: 0, bytesTotal: total, fraction: 0 })
    await extractPhysical({
      dir,
      manifest,
      dataKey,
      dataDir: o.dataDir,
      runAs: o.runAs,
      onBytes: (n) => {
        done += n
        if (done - last > 32 << 20) {
          last = done
          progress({ phase: 'extract', message: 'extracting', bytesDone: done, bytesTotal: total, fraction: Math.min(1, done / total) })
        }
      },
    })
  } catch (err) {
    await fsp.rm(madeParent ?? o.dataDir, { recursive: true, force: true })
    throw err
  }

  const socketDir = path.dirname(o.dataDir)
  const settings = RESTORED_SETTINGS(o.port, socketDir)
  if (pitr && o.walDir) {
    settings.restore_command = `'${restoreCommand(o.walDir).replace(/'/g, "''")}'`
    if (o.targetTime) settings.recovery_target_time = `'${o.targetTime.replace(/'/g, "''")}'`
    if (o.targetLsn) settings.recovery_target_lsn = `'${o.targetLsn}'`
    settings.recovery_target_action = "'promote'"
    settings.recovery_target_timeline = "'latest'"
  }
  const autoConf = path.join(o.dataDir, 'postgresql.auto.conf')
  const prev = await fsp.readFile(autoConf, 'utf8').catch(() => '')
  const kept = prev.split('\n').filter((l) => {
    const k = l.split('=')[0]?.trim()
    return !(k && k in settings)
  })
  await fsp.writeFile(autoConf, [...kept.filter((l) => l.trim()), '# set by magflock backup restore', ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`)].join('\n') + '\n')
  await fsp.rm(path.join(o.dataDir, 'standby.signal'), { force: true })
  await fsp.rm(path.join(o.dataDir, 'postmaster.pid'), { force: true })
  if (pitr) await fsp.writeFile(path.join(o.dataDir, 'recovery.signal'), '')
  if (o.runAs) {
    await fsp.chown(autoConf, o.runAs.uid, o.runAs.gid)
    if (pitr) await fsp.chown(path.join(o.dataDir, 'recovery.signal'), o.runAs.uid, o.runAs.gid)
  }

  const logFile = o.logFile ?? path.join(path.dirname(o.dataDir), 'postgres.log')
  const result: PhysicalRestoreResult = {
    id: o.id,
    dataDir: o.dataDir,
    port: o.port,
    started: false,
    pitr: pitr ? { ...(o.targetTime ? { targetTime: o.targetTime } : {}), ...(o.targetLsn ? { targetLsn: o.targetLsn } : {}) } : null,
    logFile,
    seconds: 0,
  }
  if (o.start === false) {
    result.seconds = (Date.now() - t0) / 1000
    return result
  }
  progress({ phase: 'start', message: pitr ? 'replaying WAL to the target' : 'starting the restored instance' })
  await startRestored(o, logFile, pitr)
  result.started = true
  result.seconds = (Date.now() - t0) / 1000
  progress({ phase: 'done', message: `restored instance accepts writes on port ${o.port}`, fraction: 1 })
  return result
}

async function startRestored(o: PhysicalRestoreOptions, logFile: string, pitr: boolean): Promise<void> {
  await fsp.writeFile(logFile, '', { flag: 'a' })
  if (o.runAs) await fsp.chown(logFile, o.runAs.uid, o.runAs.gid)
  const timeoutMs = o.timeoutMs ?? 300_000
  const res = await run(o.bins.tool('pg_ctl'), ['-D', o.dataDir, '-l', logFile, '-w', '-t', String(Math.ceil(timeoutMs / 1000)), 'start'], {
    runAs: o.runAs,
    reject: false,
    timeoutMs: timeoutMs + 5000,
  })
  if (res.exitCode !== 0) throw await recoveryFailure(o, logFile)
  if (!pitr) return
  // pg_ctl -w returns once the server is consistent; a promoted PITR target is writable later.
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const c = new pg.Client({ host: '127.0.0.1', port: o.port, user: o.auth?.user ?? 'postgres', password: o.auth?.password, database: 'postgres' })
    try {
      await c.connect()
      const r = await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')
      if (r.rows[0]?.r === false) return
    } catch {
      if (!(await postmasterAlive(o.dataDir))) throw await recoveryFailure(o, logFile)
    } finally {
      await c.end().catch(() => undefined)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw BACKUP_RECOVERY_FAILED({ reason: `still in recovery after ${timeoutMs} ms` })
}

async function recoveryFailure(o: PhysicalRestoreOptions, logFile: string): Promise<Error> {
  const log = await fsp.readFile(logFile, 'utf8').catch(() => '')
  const lines = log.split('\n').filter((l) => /FATAL|PANIC|ERROR/.test(l))
  const m = log.match(/could not (?:open|find|restore) file "(?:pg_wal\/)?([0-9A-F]{24})"/)
  if (m && o.walDir) return BACKUP_WAL_MISSING({ segment: m[1]!, walDir: o.walDir })
  return BACKUP_RECOVERY_FAILED({ reason: lines.slice(-2).join(' | ') || 'pg_ctl start failed' })
}
