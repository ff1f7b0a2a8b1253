import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import type pg from 'pg'
import type { MagflockConfig } from '../config/schema.js'
import type { RestartPolicy } from '../kernel/restart-policy.js'
import type { OsUser } from '../platform/os-user.js'
import type { PgBinaries } from '../platform/pg-tools.js'
import type { InstanceRole } from '../postgres/instance-names.js'
import { ARCHIVE_LOCK } from './archiver.js'
import { isMagflockError } from '../errors/index.js'
import { exists } from '../platform/fs.js'
import { INSTANCE_START_FAILED, INSTANCE_START_TIMEOUT } from '../postgres/errors.js'
import { pgControl } from '../postgres/control.js'
import { startInstance, stopInstance, type InstanceSpec } from '../postgres/instance.js'
import { InstanceSupervisor } from '../postgres/supervisor.js'
import type { BackupSummary } from '../api/backup.js'
import type { HookRunner, InstanceRegistry, KernelServices } from '../kernel/services.js'
import { freePort } from '../platform/ports.js'
import { BACKUP_CANCELLED, BACKUP_INPLACE_HAS_REPLICAS, BACKUP_INPLACE_NEEDS_FORCE, BACKUP_INVALID, BACKUP_ROLLBACK_FAILED, BACKUP_TARGET_EXISTS } from './errors.js'
import { kekSecretName, loadKek, openBackupKey, rekeyBackups, type RekeyResult } from './keys.js'
import { createLogicalBackup, restoreLogical } from './logical.js'
import { listBackups, loadBackup, newBackupId, type BackupManifest } from './manifest.js'
import { createPhysicalBackup } from './physical.js'
import { pruneBackups, type PrunePolicy, type PruneResult } from './retention.js'
import { clearRestoreMark, dropRecoverySettings, markRestore, prepareRestore, recoveryFailure, restorePhysical, timelineFork, waitWritable, type PhysicalRestoreOptions } from './restore.js'
import { databaseExists, withClient } from './sql.js'
import type { OnProgress, Progress } from './tools.js'
import { listArchive, segmentNo } from './wal.js'
import { verifyBackup, type VerifyResult } from './verify.js'
import { LOCAL_REPOSITORY } from '../config/repository.js'
import { BACKUP_REPO_PUSH_FAILED } from './repository/errors.js'
import { openRepository, remoteConfigs } from './repository/index.js'
import { rekeyRepository, type RepoRekeyResult } from './repository/rekey.js'
import { abandonPushes, beginPushes, completePushes, fanOut, type RemotePush } from './repository/push.js'

/**
 * The backup service as the kernel uses it: the library functions above, fed from the
 * kernel's services (primary connection, binaries, OS user, vault, state layout, locks).
 * Route handlers and the scheduler call these; they never touch Postgres themselves.
 */
export type BackupDeps = Pick<KernelServices, 'layout' | 'config' | 'bins' | 'runAs' | 'secrets' | 'instances' | 'locks'>

export function summarize(m: BackupManifest): BackupSummary {
  return {
    id: m.id,
    type: m.type,
    label: m.label,
    databases: m.databases,
    startTime: m.startTime,
    stopTime: m.stopTime,
    startLsn: m.startLsn,
    stopLsn: m.stopLsn,
    timeline: m.timeline,
    pgVersion: m.pgVersion,
    compression: m.compression,
    encrypted: m.encryption !== null,
    keyId: m.encryption?.keyId ?? null,
    sizeBytes: m.totalBytes,
    sourceBytes: m.sourceBytes,
    files: m.files.length,
  }
}

function kekName(k: BackupDeps): string {
  return kekSecretName(k.config().backup.encryptionKey)
}

/** The key-encryption key an encrypted backup needs (also used by `replica add --from-backup`). */
export async function kekFor(k: BackupDeps, m: BackupManifest): Promise<Buffer | undefined> {
  if (!m.encryption) return undefined
  const v = await k.secrets.get(m.encryption.secretName)
  if (!v) return undefined // openBackupKey raises E_BACKUP_KEY_MISSING naming the secret
  return loadKek((n) => k.secrets.get(n), m.encryption.secretName)
}

export interface CreateInput {
  type: 'physical' | 'logical'
  db?: string | undefined
  encrypt: boolean
  label?: string | undefined
}

export async function createBackup(k: BackupDeps & { hooks?: HookRunner }, input: CreateInput, onProgress?: OnProgress, signal?: AbortSignal): Promise<BackupSummary & { seconds: number; repositories: string[]; source: string }> {
  // Extension hooks (docs/extensions.md): a veto stops the backup before it starts (E_HOOK_VETOED).
  const hookContext = { type: input.type, database: input.db ?? null, encrypted: input.encrypt, label: input.label ?? null }
  await k.hooks?.run('backup.before', hookContext)
  try {
    const r = await createBackupUnhooked(k, input, onProgress, signal)
    k.hooks?.notify('backup.after', { ...hookContext, ok: true, id: r.id, bytes: r.sizeBytes, seconds: r.seconds })
    return r
  } catch (err) {
    k.hooks?.notify('backup.after', { ...hookContext, ok: false, code: isMagflockError(err) ? err.code : 'E_INTERNAL' })
    throw err
  }
}

async function createBackupUnhooked(k: BackupDeps, input: CreateInput, onProgress?: OnProgress, signal?: AbortSignal): Promise<BackupSummary & { seconds: number; repositories: string[]; source: string }> {
  const t0 = Date.now()
  const cfg = k.config().backup
  const source = input.type === 'physical' ? await backupSource(k) : { name: k.instances.primary().name, conn: await k.instances.primary().connection('postgres') }
  const conn = source.conn
  const encryption = input.encrypt ? { kek: await loadKek((n) => k.secrets.get(n), kekName(k)), secretName: kekName(k) } : undefined
  const common = { backupsDir: k.layout.backupsDir, conn, bins: k.bins, runAs: k.runAs, compression: cfg.compression, encryption, ...(input.label ? { label: input.label } : {}), ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) }
  let m: BackupManifest
  let remote: { pushes: RemotePush[]; failures: string[] }
  if (input.type === 'logical') {
    if (!input.db) throw BACKUP_INVALID({ message: 'A logical backup needs --db NAME.' })
    const release = k.locks.acquire(`db:${input.db}`, 'backup')
    try {
      m = await createLogicalBackup({ ...common, database: input.db })
    } finally {
      release()
    }
    // A few MiB of dump: uploaded once it is complete (to every repository at once).
    remote = await beginPushes(k.layout.backupsDir, m.id, remoteOpeners(k), signal)
  } else {
    if (input.db) throw BACKUP_INVALID({ message: '--db is for logical backups; a physical backup covers the whole instance.' })
    // Streamed: base.tar goes to every repository while pg_basebackup writes it (push.ts).
    const id = newBackupId('physical')
    remote = await beginPushes(k.layout.backupsDir, id, remoteOpeners(k), signal)
    const { pushes } = remote
    try {
      m = await createPhysicalBackup({ ...common, id, tee: (_id, rel) => fanOut(pushes.map((p) => p.stream(rel))) })
    } catch (err) {
      await abandonPushes(pushes)
      throw err
    }
  }
  const repositories = [LOCAL_REPOSITORY, ...(await completeRemotes(k, remote, m, onProgress, signal))]
  return { ...summarize(m), seconds: (Date.now() - t0) / 1000, repositories, source: source.name }
}

function remoteOpeners(k: BackupDeps) {
  return remoteConfigs(k).map((cfg) => ({ name: cfg.name, open: () => openRepository(cfg, (n) => k.secrets.get(n)) }))
}

/**
 * Where a physical backup reads from. `backup.source: prefer-standby`: the first replica that
 * answers and is in recovery (pg_basebackup works against a standby and streams its WAL from
 * it), so the primary does not pay for the read; otherwise, or with `primary`, the primary.
 */
async function backupSource(k: BackupDeps): Promise<{ name: string; conn: pg.ClientConfig }> {
  const primary = k.instances.primary()
  if (k.config().backup.source === 'prefer-standby') {
    for (const r of k.instances.members().filter((m) => m.role === 'replica')) {
      const conn = await r.connection('postgres')
      const standby = await withClient({ ...conn, connectionTimeoutMillis: 2000 }, async (c) => (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r === true).catch(() => false)
      if (standby) return { name: r.name, conn }
    }
  }
  return { name: primary.name, conn: await primary.connection('postgres') }
}

/**
 * Finishes the local backup's way into every object-store repository (docs/backup.md
 * "Repositories"), all at once. If any failed, its partial upload is already removed and
 * E_BACKUP_REPO_PUSH_FAILED names each repository and object (the local copy stays).
 */
async function completeRemotes(k: BackupDeps, remote: { pushes: RemotePush[]; failures: string[] }, m: BackupManifest, onProgress?: OnProgress, signal?: AbortSignal): Promise<string[]> {
  if (remote.pushes.length === 0 && remote.failures.length === 0) return []
  const r = await completePushes(remote.pushes, path.join(k.layout.backupsDir, m.id), m, onProgress)
  if (signal?.aborted) throw signal.reason ?? new Error('cancelled')
  const failures = [...remote.failures, ...r.failures]
  if (failures.length) throw BACKUP_REPO_PUSH_FAILED({ id: m.id, failures: failures.join('; ') })
  return r.stored
}

export async function listAll(k: BackupDeps) {
  const l = await listBackups(k.layout.backupsDir)
  return { backups: l.complete.map(summarize), incomplete: l.incomplete.map((i) => ({ id: i.id, state: i.state, reason: i.reason })) }
}

export async function verify(k: BackupDeps, id: string, deep: boolean, onProgress?: OnProgress): Promise<VerifyResult> {
  const { manifest } = await loadBackup(k.layout.backupsDir, id)
  const kek = deep ? await kekFor(k, manifest) : undefined
  return verifyBackup({ backupsDir: k.layout.backupsDir, id, deep: deep && (!manifest.encryption || kek !== undefined), bins: k.bins, runAs: k.runAs, kek, ...(onProgress ? { onProgress } : {}) })
}

export interface RestoreInput {
  id: string
  toInstance?: string | undefined
  toDb?: string | undefined
  /** Source database of a one-database restore from a physical backup (default: toDb). */
  db?: string | undefined
  port?: number | undefined
  targetTime?: string | undefined
  targetLsn?: string | undefined
  force: boolean
}

export interface RestoreOutput {
  id: string
  kind: 'instance' | 'database'
  target: string
  port: number | null
  dataDir: string | null
  pitr: boolean
  seconds: number
  /** 'primary' for an in-place restore, 'standalone' for a restored copy, null for a database. */
  role: 'primary' | 'standalone' | null
  /** In-place restore: where the replaced data dir was kept (never deleted). */
  previousDataDir: string | null
  /** Database restores: the database it came from. */
  sourceDb: string | null
}

/**
 * The kernel's instance registry with supervision (the daemon's FlockInstances satisfies it):
 * restores that create or replace an instance need it, the plain registry of KernelServices
 * is not enough.
 */
export interface SupervisedInstances extends InstanceRegistry {
  specFor(name: string, port: number, bins: PgBinaries, runAs: OsUser | undefined): InstanceSpec
  syncRestartPolicy(cfg: MagflockConfig): RestartPolicy
  add(spec: InstanceSpec, role: InstanceRole, supervisor: InstanceSupervisor | undefined): void
  saveTopology(): Promise<void>
  supervisor(name: string): InstanceSupervisor | undefined
}

export type RestoreDeps = BackupDeps & Pick<KernelServices, 'log' | 'events'> & { flock: SupervisedInstances }

/**
 * Where a restore reads from: the local repository by default; a backup fetched (and
 * re-hashed) from an object store into a staging dir, with the WAL read back from the
 * repositories, for `--repo NAME` (repository/restore.ts).
 */
export interface RestoreSource {
  backupsDir: string
  walDir: string
  /** WAL served on demand from the repositories (repository/wal-serve.ts) instead of walDir. */
  remoteWal?: PhysicalRestoreOptions['remoteWal']
  /** The backup's files streamed from a repository (backupsDir holds only its manifest.json). */
  reader?: PhysicalRestoreOptions['reader']
}

export async function restore(k: RestoreDeps, input: RestoreInput, onProgress?: OnProgress, signal?: AbortSignal, source?: RestoreSource): Promise<RestoreOutput> {
  const t0 = Date.now()
  const backupsDir = source?.backupsDir ?? k.layout.backupsDir
  const { manifest } = await loadBackup(backupsDir, input.id)
  const kek = await kekFor(k, manifest)
  await openBackupKey(backupsDir, input.id, kek) // wrong/missing key: refuse first
  const primary = k.instances.primary()
  const conn: pg.ClientConfig = await primary.connection('postgres')
  const auth = { user: String(conn.user ?? 'postgres'), password: typeof conn.password === 'string' ? conn.password : undefined }
  const none = { role: null, previousDataDir: null, sourceDb: null }
  if (manifest.type === 'logical') {
    if (input.toInstance || input.targetTime || input.targetLsn || input.db) {
      throw BACKUP_INVALID({ message: 'A logical backup restores into a database (--to-db); point-in-time needs a physical backup (see docs/backup.md).' })
    }
    const target = input.toDb ?? manifest.databases[0] ?? 'restored'
    const release = k.locks.acquire(`db:${target}`, 'restore')
    try {
      const r = await restoreLogical({ backupsDir, id: input.id, conn, targetDb: target, force: input.force, bins: k.bins, runAs: k.runAs, kek, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) })
      return { id: input.id, kind: 'database', target: r.database, port: null, dataDir: null, pitr: false, seconds: (Date.now() - t0) / 1000, ...none, sourceDb: manifest.databases[0] ?? null }
    } finally {
      release()
    }
  }
  const common = {
    backupsDir,
    id: input.id,
    bins: k.bins,
    runAs: k.runAs,
    kek,
    walDir: source?.walDir ?? k.layout.walDir,
    remoteWal: source?.remoteWal,
    reader: source?.reader,
    ...(input.targetTime ? { targetTime: input.targetTime } : {}),
    ...(input.targetLsn ? { targetLsn: input.targetLsn } : {}),
    auth,
    timeoutMs: restoreTimeoutMs(k),
    ...(onProgress ? { onProgress } : {}),
    signal,
  }
  const pitr = Boolean(input.targetTime || input.targetLsn)
  if (input.toDb) {
    if (input.toInstance) throw BACKUP_INVALID({ message: 'Give --to-db or --to-instance, not both.' })
    const r = await restoreDatabaseAt(k, common, conn, input.toDb, input.db ?? input.toDb, input.force)
    return { id: input.id, kind: 'database', target: input.toDb, port: null, dataDir: null, pitr, seconds: (Date.now() - t0) / 1000, ...none, sourceDb: r.sourceDb }
  }
  if (input.db) throw BACKUP_INVALID({ message: '--db names the source database of a --to-db restore.' })
  if (input.toInstance === undefined || input.toInstance === primary.name) {
    if (input.port !== undefined) throw BACKUP_INVALID({ message: '--port is for a new instance; an in-place restore keeps the primary\'s port.' })
    const r = await restoreInPlace(k, common, primary.name, input.force)
    return { id: input.id, kind: 'instance', target: primary.name, port: primary.port, dataDir: primary.dataDir, pitr, seconds: (Date.now() - t0) / 1000, ...none, role: 'primary', previousDataDir: r.previousDataDir }
  }
  const r = await restoreCopy(k, common, input.toInstance, input.port)
  return { id: input.id, kind: 'instance', target: input.toInstance, port: r.port, dataDir: r.dataDir, pitr, seconds: (Date.now() - t0) / 1000, ...none, role: 'standalone' }
}

type CommonRestore = Omit<PhysicalRestoreOptions, 'dataDir' | 'port'> & { walDir: string; timeoutMs: number; auth: { user: string; password?: string | undefined } }

function restoreTimeoutMs(k: BackupDeps): number {
  return k.config().postgres.startTimeoutSeconds * 1000 * 5
}

function supervisorFor(k: RestoreDeps, spec: InstanceSpec): InstanceSupervisor {
  return new InstanceSupervisor(spec, { log: k.log.child({ instance: spec.name }), events: k.events, restart: k.flock.syncRestartPolicy(k.config()), role: 'standalone', tookOver: true })
}

/** A start that failed while recovering is explained from the log (missing WAL, FATAL line). */
async function explainStart(err: unknown, walDir: string, logFile: string, logFrom: number): Promise<unknown> {
  if (INSTANCE_START_FAILED.is(err) || INSTANCE_START_TIMEOUT.is(err)) return recoveryFailure(walDir, logFile, logFrom)
  return err
}

async function sizeOf(file: string): Promise<number> {
  return fsp.stat(file).then((s) => s.size, () => 0)
}

/**
 * `--to-instance NAME`: a restored copy the kernel supervises (role standalone): restarted
 * after a crash, re-adopted by the next kernel, listed by status, removed by `instance remove`.
 * Anything that fails (or a cancelled call) removes the new instance dir again.
 */
async function restoreCopy(k: RestoreDeps, common: CommonRestore, name: string, port?: number): Promise<{ port: number; dataDir: string }> {
  if (k.flock.get(name)) throw BACKUP_TARGET_EXISTS({ what: 'instance', name })
  const prepared = await prepareRestore({ ...common, fullVerify: false })
  const spec = k.flock.specFor(name, port ?? (await freePort()), k.bins, k.runAs)
  const normalTimeout = spec.startTimeoutMs
  spec.startTimeoutMs = common.timeoutMs
  // An existing directory that is no registered instance: only with --force (restorePhysical checks).
  const hadDir = await exists(spec.instanceDir)
  try {
    await restorePhysical({ ...common, prepared, dataDir: spec.dataDir, port: spec.port, conf: 'copy', start: false, logFile: spec.logFile })
  } catch (err) {
    if (!hadDir) await fsp.rm(spec.instanceDir, { recursive: true, force: true })
    throw err
  }
  const sup = supervisorFor(k, spec)
  try {
    common.onProgress?.({ phase: 'start', message: prepared.pitr ? 'replaying WAL to the target' : `starting ${name} under the kernel's supervision` })
    await sup.start().catch(async (err: unknown) => Promise.reject(await explainStart(err, common.walDir, spec.logFile, 0)))
    await waitWritable({ dataDir: spec.dataDir, port: spec.port, logFile: spec.logFile, walDir: common.walDir, auth: common.auth, timeoutMs: common.timeoutMs, signal: common.signal })
    await dropRecoverySettings(spec.dataDir, k.runAs)
  } catch (err) {
    await sup.stop({ keepRunning: false }).catch(() => undefined)
    await stopInstance(spec, 'immediate').catch(() => undefined)
    await fsp.rm(spec.instanceDir, { recursive: true, force: true })
    throw common.signal?.aborted ? BACKUP_CANCELLED({ what: `restore of ${common.id}` }) : err
  }
  spec.startTimeoutMs = normalTimeout
  k.flock.add(spec, 'standalone', sup)
  await k.flock.saveTopology()
  common.onProgress?.({ phase: 'done', message: `${name} accepts writes on port ${spec.port}`, fraction: 1 })
  return { port: spec.port, dataDir: spec.dataDir }
}

/**
 * In place, over the flock's primary (docs/backup.md "In-place restore"): every check first,
 * then stop (supervision paused), keep the old data dir aside, extract, recover onto a new
 * timeline, start with the instance's own config, wait until writable, hand it back to its
 * supervisor. Any failure after the stop (or a cancelled call) puts the old data dir back and
 * starts it. The WAL archiver waits meanwhile (lock `wal-archive`) and afterwards streams the
 * new timeline: archived segments of the old timeline past the fork are moved aside first.
 */
async function restoreInPlace(k: RestoreDeps, common: CommonRestore, primaryName: string, force: boolean): Promise<{ previousDataDir: string }> {
  if (!force) throw BACKUP_INPLACE_NEEDS_FORCE({ instance: primaryName, id: common.id })
  const others = k.flock.members().filter((m) => m.role !== 'primary')
  if (others.length > 0) throw BACKUP_INPLACE_HAS_REPLICAS({ replicas: others.map((m) => m.name) })
  const sup = k.flock.supervisor(primaryName)
  if (!sup) throw BACKUP_INVALID({ message: `The primary "${primaryName}" is not supervised by this kernel.` })
  // Everything is checked before the primary is stopped, the full re-hash included.
  const prepared = await prepareRestore({ ...common, fullVerify: true })
  common.signal?.throwIfAborted()
  const spec = sup.spec
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  const previous = `${spec.dataDir}.pre-restore-${stamp}`
  const releaseArchive = k.locks.acquire(ARCHIVE_LOCK, 'in-place restore')
  const normalTimeout = spec.startTimeoutMs
  try {
    // A kernel that dies from here on leaves this marker; the next boot rolls back (undoInterruptedRestore).
    await markRestore(spec.instanceDir, { id: common.id, previous })
    common.onProgress?.({ phase: 'stop', message: `stopping ${primaryName}` })
    await sup.pauseSupervision()
    try {
      await stopInstance(spec, 'fast')
    } catch (err) {
      await clearRestoreMark(spec.instanceDir)
      await sup.resumeSupervision().catch(() => undefined)
      throw err
    }
    try {
      await fsp.rename(spec.dataDir, previous)
      await restorePhysical({ ...common, prepared, dataDir: spec.dataDir, port: spec.port, conf: 'in-place', start: false, logFile: spec.logFile })
      common.onProgress?.({ phase: 'start', message: prepared.pitr ? 'replaying WAL to the target' : `starting ${primaryName} on a new timeline` })
      const logFrom = await sizeOf(spec.logFile)
      spec.startTimeoutMs = common.timeoutMs
      // Started here while supervision is paused; resumeSupervision() adopts this postmaster.
      await startInstance(spec).catch(async (err: unknown) => Promise.reject(await explainStart(err, common.walDir, spec.logFile, logFrom)))
      await waitWritable({ dataDir: spec.dataDir, port: spec.port, logFile: spec.logFile, walDir: common.walDir, auth: common.auth, timeoutMs: common.timeoutMs, signal: common.signal, logFrom })
      await dropRecoverySettings(spec.dataDir, k.runAs)
      common.signal?.throwIfAborted()
      await clearRestoreMark(spec.instanceDir)
    } catch (err) {
      const cause = common.signal?.aborted ? BACKUP_CANCELLED({ what: `in-place restore of ${common.id}` }) : err
      await rollBack(sup, spec, previous, normalTimeout, cause)
      await clearRestoreMark(spec.instanceDir)
      throw cause
    }
    // Committed: from here on nothing rolls back (the old timeline's archive tail must then stay).
    await setAsideOldTimeline(spec.dataDir, k.layout.walDir, stamp).catch((err: unknown) =>
      k.log.error({ err }, 'could not move the old timeline\'s WAL aside; the wal-archiver may not resume (docs/backup.md)'),
    )
    spec.startTimeoutMs = normalTimeout
    await sup.resumeSupervision()
  } finally {
    spec.startTimeoutMs = normalTimeout
    releaseArchive()
  }
  common.onProgress?.({ phase: 'done', message: `${primaryName} restored from ${common.id} and accepts writes; the old data dir is ${previous}`, fraction: 1 })
  return { previousDataDir: previous }
}

async function rollBack(sup: InstanceSupervisor, spec: InstanceSpec, previous: string, normalTimeout: number | undefined, cause: unknown): Promise<void> {
  try {
    await stopInstance(spec, 'immediate')
    if (await exists(previous)) {
      await fsp.rm(spec.dataDir, { recursive: true, force: true })
      await fsp.rename(previous, spec.dataDir)
    }
    spec.startTimeoutMs = normalTimeout
    await sup.resumeSupervision()
  } catch (err) {
    throw BACKUP_ROLLBACK_FAILED({ reason: err instanceof Error ? err.message : String(err), previous, cause: cause instanceof Error ? cause.message : String(cause) })
  }
}

/**
 * After an in-place restore the primary writes a new timeline from the fork point on, while
 * the archive still holds the old timeline past it. pg_receivewal starts from the newest
 * segment it finds, and that one is not in the new server's history, so the archiver would
 * never start again. Those segments are moved (never deleted) to `<wal>/superseded-<time>/`.
 */
async function setAsideOldTimeline(dataDir: string, walDir: string, stamp: string): Promise<string[]> {
  const fork = await timelineFork(dataDir)
  if (!fork) return []
  const from = segmentNo(fork.switchLsn)
  const stale = (await listArchive(walDir)).filter((s) => s.tli < fork.tli && s.segNo >= from)
  if (stale.length === 0) return []
  const aside = path.join(walDir, `superseded-${stamp}`)
  await fsp.mkdir(aside, { recursive: true, mode: 0o700 })
  for (const s of stale) await fsp.rename(path.join(walDir, s.name), path.join(aside, s.name))
  return stale.map((s) => s.name)
}

/**
 * `--to-db NAME [--db SOURCE]` from a physical backup, optionally to a point in time: PITR
 * into a temporary, unsupervised instance under <state>/tmp on a private port, `pg_dump -Fd
 * -j2` of the one database there, `pg_restore -j2` into NAME on the primary (an existing NAME
 * only with --force, and only touched after the dump succeeded). The temporary instance is
 * removed in every outcome.
 */
async function restoreDatabaseAt(k: RestoreDeps, common: CommonRestore, primaryConn: pg.ClientConfig, target: string, source: string, force: boolean): Promise<{ sourceDb: string }> {
  if (!force && (await withClient(primaryConn, (c) => databaseExists(c, target)))) throw BACKUP_TARGET_EXISTS({ what: 'database', name: target })
  const release = k.locks.acquire(`db:${target}`, 'restore')
  const tmp = path.join(k.layout.root, 'tmp', `pitr-${randomBytes(4).toString('hex')}`)
  const dataDir = path.join(tmp, 'data')
  const progress = common.onProgress ?? (() => undefined)
  // The inner steps' own 'done' events are milestones here, not the end of the restore.
  const step = (phase: string) => (p: Progress) => progress(p.phase === 'done' ? { ...p, phase } : p)
  try {
    await fsp.mkdir(path.dirname(tmp), { recursive: true, mode: 0o711 })
    progress({ phase: 'pitr', message: `restoring ${common.id} into a temporary instance` })
    const port = await freePort()
    await restorePhysical({ ...common, dataDir, port, onProgress: step('pitr') })
    const conn = { host: '127.0.0.1', port, user: common.auth.user, password: common.auth.password, database: 'postgres' }
    if (!(await withClient(conn, (c) => databaseExists(c, source)))) {
      throw BACKUP_INVALID({ message: `Database "${source}" is not in backup ${common.id} at that point; pick the source with --db.` })
    }
    progress({ phase: 'dump', message: `pg_dump -Fd -j2 of ${source}` })
    const dumps = path.join(tmp, 'dump')
    const m = await createLogicalBackup({ backupsDir: dumps, conn, database: source, bins: k.bins, runAs: k.runAs, compression: 'none', onProgress: step('dump'), ...(common.signal ? { signal: common.signal } : {}) })
    progress({ phase: 'restore', message: `pg_restore -j2 into ${target}` })
    await restoreLogical({ backupsDir: dumps, id: m.id, conn: primaryConn, targetDb: target, force, bins: k.bins, runAs: k.runAs, onProgress: step('restore'), ...(common.signal ? { signal: common.signal } : {}) })
    progress({ phase: 'done', message: `${source} restored into ${target}`, fraction: 1 })
    return { sourceDb: source }
  } catch (err) {
    throw common.signal?.aborted ? BACKUP_CANCELLED({ what: `restore of ${common.id} into database ${target}` }) : err
  } finally {
    progress({ phase: 'cleanup', message: 'removing the temporary instance' })
    if (await exists(path.join(dataDir, 'postmaster.pid'))) {
      await pgControl(k.bins, k.runAs).pgCtlStop({ dataDir, mode: 'immediate', timeoutMs: 60_000 })
    }
    await fsp.rm(tmp, { recursive: true, force: true })
    release()
  }
}

export async function prune(k: BackupDeps, policy: PrunePolicy, dryRun: boolean): Promise<Omit<PruneResult, 'leftoversRemoved'> & { leftoversRemoved: string[] }> {
  const walDir = (await fsp.access(k.layout.walDir).then(() => true, () => false)) ? k.layout.walDir : undefined
  const r = await pruneBackups({ backupsDir: k.layout.backupsDir, walDir, policy, dryRun })
  return { ...r, leftoversRemoved: r.leftoversRemoved.map((l) => l.id) }
}

/**
 * Rewraps under the new key every encrypted backup of the local repository, then every
 * encrypted backup and WAL object of each object-store repository (repository/rekey.ts: one
 * PUT per object, read back and checked; objects already under the new key are skipped, so an
 * interrupted rekey is finished by running it again).
 */
export async function rekey(k: BackupDeps, fromSecret: string, toSecret?: string): Promise<RekeyResult & { repositories: RepoRekeyResult[] }> {
  const to = toSecret ?? kekName(k)
  const oldKek = await loadKek((n) => k.secrets.get(n), fromSecret)
  const newKek = await loadKek((n) => k.secrets.get(n), to)
  const local = await rekeyBackups({ backupsDir: k.layout.backupsDir, oldKeks: [oldKek], newKek, newSecretName: to })
  const repositories: RepoRekeyResult[] = []
  for (const cfg of remoteConfigs(k)) {
    const repo = await openRepository(cfg, (n) => k.secrets.get(n))
    try {
      repositories.push(await rekeyRepository(repo, [oldKek], newKek, to))
    } finally {
      repo.destroy()
    }
  }
  return { ...local, repositories }
}
