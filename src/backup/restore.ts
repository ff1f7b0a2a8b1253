import { promises as fsp } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import type { OsUser } from '../platform/os-user.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { pgControl } from '../postgres/control.js'
import { BACKUP_CANCELLED, BACKUP_INVALID, BACKUP_RECOVERY_FAILED, BACKUP_TARGET_EXISTS, BACKUP_TARGET_NOT_REACHED, BACKUP_WAL_MISSING } from './errors.js'
import { extractPhysical, type BackupReader } from './extract.js'
import { openBackupKey } from './keys.js'
import type { OnProgress } from './tools.js'
import { assertLayout, assertVerified } from './verify.js'
import { firstMissingSegment, listArchive, restoreCommand, type ArchivedSegment } from './wal.js'
import { isProcessAliveSync } from '../platform/pids.js'
import { exists, fsyncDir, writeFileAtomic } from '../platform/fs.js'
import { socketDirFor } from '../postgres/conf.js'
import { processesWithArg } from '../postgres/pidfile.js'
import { readControlFile } from '../postgres/control-file.js'
import type { BackupManifest } from './manifest.js'

/**
 * Physical restore into a data dir, optionally to a point in time:
 *   key check → layout check (or full re-hash) → WAL-archive gap check (prepareRestore) →
 *   extract while hashing → recovery settings → start → wait until writable → drop the
 *   recovery settings.
 * Every refusal (wrong key, missing or resized file, missing WAL, existing target) happens
 * before a single file is written to the target; a file whose hash does not match is found
 * during extraction, and what was extracted is deleted before Postgres could start on it. The
 * kernel calls prepareRestore itself before it stops
 * anything (in-place restore), then restorePhysical with `prepared` and `start: false`, and
 * starts the instance under its own supervision.
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
  /**
   * restore_command instead of the copy from `walDir` (PITR from object stores: the WAL
   * server's client, repository/wal-serve.ts), and the WAL files it can serve, for the gap
   * check instead of walDir's listing.
   */
  remoteWal?: { restoreCommand: string; archive: ArchivedSegment[] } | undefined
  targetTime?: string
  targetLsn?: string
  /**
   * 'private' (default): a copy started with pg_ctl on its own port and socket, cluster_name
   * 'magflock-restore', archive_mode off. 'copy': the same copy, but the kernel writes its
   * port/socket (magflock.conf) when it starts it. 'in-place': the flock's own primary; only
   * recovery settings are added, and recovery always ends on a new timeline (target
   * 'immediate' without a PITR target) so the archive's old timeline is never overwritten.
   */
  conf?: 'private' | 'copy' | 'in-place'
  /** Start the instance and wait until it accepts writes (default true). */
  start?: boolean
  /** Superuser credentials of the backed-up instance, to check it is writable. */
  auth?: { user: string; password?: string | undefined }
  /** Server log (default: <dirname(dataDir)>/postgres.log). */
  logFile?: string
  timeoutMs?: number
  onProgress?: OnProgress
  /** Aborting kills the extraction and pg_ctl; what was written is removed. */
  signal?: AbortSignal | undefined
  /** From prepareRestore(), so the checks are not repeated. */
  prepared?: PreparedRestore
  /**
   * Read the backup's files from here instead of `<backupsDir>/<id>/` (only manifest.json is
   * there): an object-store repository streamed into extraction. The caller checked the
   * stored objects' layout; every byte is still hashed while extracting.
   */
  reader?: BackupReader | undefined
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

export interface PreparedRestore {
  id: string
  dir: string
  manifest: BackupManifest
  dataKey: Buffer | undefined
  pitr: boolean
  /** Fully re-hashed already: extraction need not hash again. */
  verified: boolean
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$/i

const MARK = '# set by magflock backup restore'
/**
 * A backup read from a standby (backup.source=prefer-standby) carries the standby's own
 * postgresql.auto.conf: its port, sockets and upstream. They must not follow it into the
 * restored instance (whose port comes from magflock.conf, or from the settings below).
 */
const STANDBY_ONLY = ['port', 'listen_addresses', 'unix_socket_directories', 'primary_conninfo', 'primary_slot_name']
/** Recovery-only settings: dropped from postgresql.auto.conf once the restore is writable. */
const RECOVERY_KEYS = ['restore_command', 'recovery_target', 'recovery_target_time', 'recovery_target_lsn', 'recovery_target_action', 'recovery_target_timeline', 'hot_standby']

function restoredSettings(conf: 'private' | 'copy' | 'in-place', port: number, dataDir: string): Record<string, string> {
  // A copy of a primary that had synchronous standbys would otherwise wait for them forever.
  const s: Record<string, string> = { synchronous_standby_names: "''" }
  if (conf === 'in-place') return s
  // A restored copy must never push WAL into the archive of the instance it came from.
  s.archive_mode = "'off'"
  if (conf === 'copy') return s
  const socketDir = socketDirFor(path.dirname(dataDir), port)
  return {
    ...s,
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${socketDir.replace(/'/g, "''")}'`,
    cluster_name: "'magflock-restore'",
  }
}

async function postmasterAlive(dataDir: string): Promise<boolean> {
  try {
    const pid = Number((await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    return isProcessAliveSync(pid)
  } catch {
    return false
  }
}

/**
 * Key check, argument check, verification and WAL gap check; writes nothing. Verification is a
 * full re-hash with `fullVerify` (replacing existing data: an in-place restore, a forced data
 * dir — what is there must survive a damaged backup); otherwise the cheap layout check, and
 * extractPhysical hashes every file while extracting (one read of the backup), the target
 * being deleted on a mismatch before Postgres ever starts.
 */
export async function prepareRestore(
  o: Pick<PhysicalRestoreOptions, 'backupsDir' | 'id' | 'kek' | 'walDir' | 'remoteWal' | 'targetTime' | 'targetLsn' | 'onProgress' | 'reader'> & { fullVerify: boolean },
): Promise<PreparedRestore> {
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
  if (o.reader) {
    // Streamed from a repository: its layout was checked there; a full re-hash first would
    // read it twice, so replacing existing data from a stream is refused (never reached:
    // such restores are staged, repository/service.ts).
    if (o.fullVerify) throw BACKUP_INVALID({ message: `Backup ${o.id} is streamed: it cannot replace existing data.` })
  } else if (o.fullVerify) await assertVerified(o.backupsDir, o.id, o.onProgress ?? (() => undefined))
  else await assertLayout(dir, manifest)
  if (pitr && o.walDir) {
    const archive = o.remoteWal?.archive ?? (await listArchive(o.walDir))
    const missing = firstMissingSegment(archive, manifest.timeline, manifest.stopLsn, o.targetLsn)
    if (missing) throw BACKUP_WAL_MISSING({ segment: missing, walDir: o.walDir })
  }
  return { id: o.id, dir, manifest, dataKey, pitr, verified: o.fullVerify }
}

/** SIGKILL for the tar that extracts into dataDir (extractPhysical has no signal of its own). */
async function killExtraction(dataDir: string): Promise<void> {
  for (const arg of [dataDir, path.join(dataDir, 'pg_wal')]) {
    for (const pid of await processesWithArg(arg)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

export async function restorePhysical(o: PhysicalRestoreOptions): Promise<PhysicalRestoreResult> {
  const t0 = Date.now()
  const progress = o.onProgress ?? (() => undefined)
  const conf = o.conf ?? 'private'

  // The target: never a running instance; an existing one only with force.
  const existing = await fsp.readdir(o.dataDir).catch(() => [] as string[])
  if (existing.length > 0) {
    if (await postmasterAlive(o.dataDir)) throw BACKUP_TARGET_EXISTS({ what: 'running instance at', name: o.dataDir })
    if (!o.force) throw BACKUP_TARGET_EXISTS({ what: 'data directory', name: o.dataDir })
  }
  const { dir, manifest, dataKey, pitr, verified } = o.prepared ?? (await prepareRestore({ ...o, fullVerify: existing.length > 0 }))
  o.signal?.throwIfAborted()

  if (existing.length > 0) await fsp.rm(o.dataDir, { recursive: true, force: true })
  // The parent holds the socket and the log, so the postgres OS user must own it when we made it.
  const parent = path.dirname(o.dataDir)
  const madeParent = await fsp.mkdir(parent, { recursive: true })
  if (madeParent && o.runAs) await fsp.chown(parent, o.runAs.uid, o.runAs.gid)
  await fsp.mkdir(o.dataDir, { mode: 0o700 })
  await fsp.chmod(o.dataDir, 0o700)
  if (o.runAs) await fsp.chown(o.dataDir, o.runAs.uid, o.runAs.gid)

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
  const onAbort = () => void killExtraction(o.dataDir)
  o.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const total = manifest.files.reduce((s, f) => s + f.size, 0)
    let done = 0
    let last = 0
    progress({ phase: 'extract', message: 'extracting', bytesDone: 0, bytesTotal: total, fraction: 0 })
    await extractPhysical({
      dir,
      manifest,
      dataKey,
      dataDir: o.dataDir,
      runAs: o.runAs,
      verify: !verified,
      reader: o.reader,
      onBytes: (n) => {
        done += n
        if (done - last > 32 << 20) {
          last = done
          progress({ phase: 'extract', message: 'extracting', bytesDone: done, bytesTotal: total, fraction: Math.min(1, done / total) })
        }
      },
    })
    o.signal?.throwIfAborted()
    await writeRecoverySettings(o, conf, pitr)
    if (o.start === false) {
      result.seconds = (Date.now() - t0) / 1000
      return result
    }
    progress({ phase: 'start', message: pitr ? 'replaying WAL to the target' : 'starting the restored instance' })
    await startRestored(o, logFile)
    await waitWritable({ ...o, logFile })
    await dropRecoverySettings(o.dataDir, o.runAs)
  } catch (err) {
    // Nothing half-restored stays behind (a started copy is stopped first).
    if (await postmasterAlive(o.dataDir)) {
      await pgControl(o.bins, o.runAs).pgCtlStop({ dataDir: o.dataDir, mode: 'immediate', timeoutMs: 30_000 })
    }
    await fsp.rm(madeParent ?? o.dataDir, { recursive: true, force: true })
    throw o.signal?.aborted ? BACKUP_CANCELLED({ what: `restore of ${o.id}` }) : err
  } finally {
    o.signal?.removeEventListener('abort', onAbort)
  }
  result.started = true
  result.seconds = (Date.now() - t0) / 1000
  progress({ phase: 'done', message: `restored instance accepts writes on port ${o.port}`, fraction: 1 })
  return result
}

async function writeRecoverySettings(o: PhysicalRestoreOptions, conf: 'private' | 'copy' | 'in-place', pitr: boolean): Promise<void> {
  const settings = restoredSettings(conf, o.port, o.dataDir)
  // In place, recovery always ends on a new timeline: the archive already holds the old
  // timeline's WAL past the backup, which the restored primary must never write over.
  const archiveRecovery = Boolean(o.walDir) && (pitr || conf === 'in-place')
  if (archiveRecovery && o.walDir) {
    settings.restore_command = `'${(o.remoteWal?.restoreCommand ?? restoreCommand(o.walDir)).replace(/'/g, "''")}'`
    if (o.targetTime) settings.recovery_target_time = `'${o.targetTime.replace(/'/g, "''")}'`
    else if (o.targetLsn) settings.recovery_target_lsn = `'${o.targetLsn}'`
    else settings.recovery_target = "'immediate'"
    if (pitr) {
      // To a time or LSN: paused at the target, where the promotion waitWritable requested
      // (pg_promote) takes effect. Ending at the target with action 'promote', PostgreSQL 15's
      // startup process runs a full end-of-recovery checkpoint and waits for it before the
      // first write; a promotion writes an end-of-recovery record and lets that checkpoint run
      // in the background, as a standby's promotion does (xlog.c, PerformRecoveryXLogAction).
      // Without standby.signal a promote request is only looked at in that pause, so one made
      // while WAL is still replayed cannot end recovery before the target (xlogrecovery.c:
      // recoveryPausesHere; WaitForWALToBecomeAvailable checks it in standby mode only).
      // Pausing needs hot_standby: with it off, Postgres shuts down at the target instead.
      settings.recovery_target_action = "'pause'"
      settings.hot_standby = "'on'"
    } else {
      // 'immediate' (in place, no target) stops as soon as the backup is consistent: the
      // checkpoint then covers only the backup's own WAL, and a pause would make the
      // promotion wait for the pause loop's next one-second tick.
      settings.recovery_target_action = "'promote'"
    }
    settings.recovery_target_timeline = "'latest'"
  }
  const autoConf = path.join(o.dataDir, 'postgresql.auto.conf')
  const prev = await fsp.readFile(autoConf, 'utf8').catch(() => '')
  const kept = prev.split('\n').filter((l) => {
    const k = l.split('=')[0]?.trim()
    return !(k && (k in settings || STANDBY_ONLY.includes(k))) && l.trim() !== MARK
  })
  await fsp.writeFile(autoConf, [...kept.filter((l) => l.trim()), MARK, ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`)].join('\n') + '\n')
  await fsp.rm(path.join(o.dataDir, 'standby.signal'), { force: true })
  await fsp.rm(path.join(o.dataDir, 'postmaster.pid'), { force: true })
  if (archiveRecovery) await fsp.writeFile(path.join(o.dataDir, 'recovery.signal'), '')
  if (o.runAs) {
    await fsp.chown(autoConf, o.runAs.uid, o.runAs.gid)
    if (archiveRecovery) await fsp.chown(path.join(o.dataDir, 'recovery.signal'), o.runAs.uid, o.runAs.gid)
  }
}

/**
 * After promotion the recovery settings have done their job; left in postgresql.auto.conf they
 * would travel into every replica later cloned from this instance (a standby honours
 * recovery_target_* too). Postgres reads them at start only, so removing them now is safe.
 */
export async function dropRecoverySettings(dataDir: string, runAs: OsUser | undefined): Promise<void> {
  const autoConf = path.join(dataDir, 'postgresql.auto.conf')
  const prev = await fsp.readFile(autoConf, 'utf8').catch(() => '')
  const next = prev.split('\n').filter((l) => !RECOVERY_KEYS.includes(l.split('=')[0]?.trim() ?? '')).join('\n')
  if (next === prev) return
  await fsp.writeFile(autoConf, next)
  if (runAs) await fsp.chown(autoConf, runAs.uid, runAs.gid)
}

async function startRestored(o: PhysicalRestoreOptions, logFile: string): Promise<void> {
  await fsp.writeFile(logFile, '', { flag: 'a' })
  if (o.runAs) await fsp.chown(logFile, o.runAs.uid, o.runAs.gid)
  const timeoutMs = o.timeoutMs ?? 300_000
  const res = await pgControl(o.bins, o.runAs).pgCtlStart({
    dataDir: o.dataDir,
    logFile,
    timeoutS: Math.ceil(timeoutMs / 1000),
    timeoutMs: timeoutMs + 5000,
    reject: false,
    signal: o.signal,
  })
  o.signal?.throwIfAborted()
  if (res.exitCode !== 0) throw await recoveryFailure(o.walDir, logFile)
}

const UNREACHED = /FATAL:\s+recovery ended before configured recovery target was reached/
/** What Postgres logs when replay stops at a WAL segment that is there but unreadable (xlogreader.c). */
const DAMAGED_WAL = /invalid magic number|incorrect resource manager data checksum|invalid resource manager ID|record with incorrect prev-link|invalid contrecord|invalid info bits|wrong size/

/**
 * Waits until the restored instance accepts writes (after pg_ctl -w or the supervisor saw it
 * accept connections). A point-in-time restore pauses at its target (writeRecoverySettings):
 * as soon as the instance answers during replay, pg_promote() asks for the promotion that
 * ends that pause with an end-of-recovery record. A target the archive does not reach never
 * pauses: Postgres stops with "recovery ended before configured recovery target was reached"
 * (E_BACKUP_TARGET_NOT_REACHED). A postmaster that dies meanwhile is reported from its log
 * (missing WAL segment or FATAL line).
 */
export async function waitWritable(o: {
  dataDir: string
  port: number
  logFile: string
  walDir?: string | undefined
  auth?: { user: string; password?: string | undefined } | undefined
  timeoutMs?: number | undefined
  signal?: AbortSignal | undefined
  /** Where this start's lines begin in logFile (an in-place restore appends to an old log). */
  logFrom?: number | undefined
}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 300_000
  const deadline = Date.now() + timeoutMs
  let c: pg.Client | undefined
  let promoteAsked = false
  // What the restore configured does not change while it is waited for: read it once.
  let pauses: Promise<boolean> | undefined
  const pausesHere = () => (pauses ??= pausesAtTarget(o.dataDir))
  try {
    while (Date.now() < deadline) {
      o.signal?.throwIfAborted()
      try {
        if (!c) {
          c = new pg.Client({ host: '127.0.0.1', port: o.port, user: o.auth?.user ?? 'postgres', password: o.auth?.password, database: 'postgres' })
          c.on('error', () => undefined)
          await c.connect()
        }
        const r = await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')
        if (r.rows[0]?.r === false) return
        if (!promoteAsked && (await pausesHere())) {
          await c.query('select pg_promote(false)')
          promoteAsked = true
        }
      } catch (err) {
        await c?.end().catch(() => undefined)
        c = undefined
        // A backup of another cluster (the disaster-recovery path) keeps that cluster's roles and
        // passwords: the server answers but refuses ours. The promotion is asked for as
        // pg_ctl promote does. Without a login, "writable" is read from the data directory:
        // recovery.signal gone (Postgres removes it as archive recovery ends, a moment before
        // the end-of-recovery record) and pg_control saying "in production" (written once
        // recovery is over and writes are allowed).
        if ((err as { code?: string }).code === '28P01') {
          if (!(await exists(path.join(o.dataDir, 'recovery.signal')))) {
            // A pg_control layout this code does not read: recovery.signal alone, as before.
            const ctl = await readControlFile(o.dataDir).catch(() => undefined)
            if (ctl === undefined || ctl.inProduction) return
          }
          if (!promoteAsked && (await pausesHere())) promoteAsked = await requestPromote(o.dataDir)
        }
        if (!(await postmasterAlive(o.dataDir))) throw await recoveryFailure(o.walDir, o.logFile, o.logFrom)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    await c?.end().catch(() => undefined)
  }
  throw BACKUP_RECOVERY_FAILED({ reason: `still in recovery after ${timeoutMs} ms` })
}

/** Archive recovery set up by writeRecoverySettings to pause at its target (a PITR). */
async function pausesAtTarget(dataDir: string): Promise<boolean> {
  if (!(await exists(path.join(dataDir, 'recovery.signal')))) return false
  const conf = await fsp.readFile(path.join(dataDir, 'postgresql.auto.conf'), 'utf8').catch(() => '')
  return /^recovery_target_action\s*=\s*'pause'/m.test(conf)
}

/** What `pg_ctl promote` does: a `promote` file in the data dir, then SIGUSR1 to the postmaster. */
async function requestPromote(dataDir: string): Promise<boolean> {
  try {
    const pid = Number((await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    const st = await fsp.stat(dataDir)
    const signalFile = path.join(dataDir, 'promote') // PROMOTE_SIGNAL_FILE (xlog.h), what pg_ctl promote writes
    await fsp.writeFile(signalFile, '', { mode: 0o600 })
    await fsp.chown(signalFile, st.uid, st.gid)
    process.kill(pid, 'SIGUSR1')
    return true
  } catch {
    return false
  }
}

export async function recoveryFailure(walDir: string | undefined, logFile: string, fromByte = 0): Promise<Error> {
  const log = (await fsp.readFile(logFile, 'utf8').catch(() => '')).slice(fromByte)
  const lines = log.split('\n').filter((l) => /FATAL|PANIC|ERROR/.test(l))
  // The archive ran out before the target, unless replay stopped at a damaged segment first
  // (then the FATAL line and the damage are the report, as for any other failed recovery).
  if (UNREACHED.test(log) && !DAMAGED_WAL.test(log)) {
    // Postgres says how far the archive went just before: "last completed transaction was at log time T".
    const last = log.match(/last completed transaction was at log time ([^\n]+?)\.?\s*$/m)?.[1]
    return BACKUP_TARGET_NOT_REACHED({ last: last ?? 'unknown' })
  }
  const m = log.match(/could not (?:open|find|restore) file "(?:pg_wal\/)?([0-9A-F]{24})"/)
  if (m && walDir) return BACKUP_WAL_MISSING({ segment: m[1]!, walDir })
  return BACKUP_RECOVERY_FAILED({ reason: lines.slice(-2).join(' | ') || 'pg_ctl start failed' })
}

/**
 * The timeline the restored instance now runs on and where it forked from its parent, read
 * from the newest `pg_wal/<tli>.history` (absent when recovery did not switch timelines).
 */
export async function timelineFork(dataDir: string): Promise<{ tli: number; parentTli: number; switchLsn: string } | undefined> {
  const names = (await fsp.readdir(path.join(dataDir, 'pg_wal')).catch(() => [] as string[])).filter((n) => /^[0-9A-F]{8}\.history$/.test(n)).sort()
  const newest = names.at(-1)
  if (!newest) return undefined
  const text = await fsp.readFile(path.join(dataDir, 'pg_wal', newest), 'utf8')
  const last = text.split('\n').filter((l) => /^\d+\s+[0-9A-F]+\/[0-9A-F]+/i.test(l.trim())).at(-1)
  if (!last) return undefined
  const [parent, lsn] = last.trim().split(/\s+/)
  return { tli: parseInt(newest.slice(0, 8), 16), parentTli: Number(parent), switchLsn: lsn! }
}

/** Written into the instance dir for the duration of an in-place restore (see undoInterruptedRestore). */
export const RESTORE_MARKER = 'restore-in-progress.json'

export async function markRestore(instanceDir: string, info: { id: string; previous: string }): Promise<void> {
  await writeFileAtomic(path.join(instanceDir, RESTORE_MARKER), JSON.stringify({ ...info, pid: process.pid, startedAt: new Date().toISOString() }) + '\n', { mode: 0o600 })
}

export async function clearRestoreMark(instanceDir: string): Promise<void> {
  await fsp.rm(path.join(instanceDir, RESTORE_MARKER), { force: true })
}

/**
 * At kernel boot: an in-place restore whose kernel died midway (kill -9, power loss) left its
 * marker. It never reported success, so it is rolled back like a failed one: whatever runs in
 * or writes into the data dir is stopped, the data dir goes and `data.pre-restore-…` is put
 * back. Without this, the next boot would find no cluster and initdb an empty primary.
 * Returns the restored-from path when it rolled something back.
 */
export async function undoInterruptedRestore(o: { instanceDir: string; dataDir: string; stop: () => Promise<unknown> }): Promise<string | undefined> {
  const marker = path.join(o.instanceDir, RESTORE_MARKER)
  let info: { previous?: string } | undefined
  try {
    info = JSON.parse(await fsp.readFile(marker, 'utf8')) as { previous?: string }
  } catch {
    return undefined
  }
  const previous = info?.previous
  if (previous && (await exists(previous))) {
    await killExtraction(o.dataDir)
    await o.stop().catch(() => undefined)
    await fsp.rm(o.dataDir, { recursive: true, force: true })
    await fsp.rename(previous, o.dataDir)
    await fsyncDir(path.dirname(o.dataDir))
  }
  await fsp.rm(marker, { force: true })
  return previous
}
