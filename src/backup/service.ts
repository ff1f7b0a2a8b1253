import { promises as fsp } from 'node:fs'
import type pg from 'pg'
import type { BackupSummary } from '../api/backup.js'
import type { KernelServices } from '../kernel/services.js'
import { freePort } from '../platform/ports.js'
import { BACKUP_INVALID, BACKUP_TARGET_EXISTS } from './errors.js'
import { kekSecretName, loadKek, openBackupKey, rekeyBackups, type RekeyResult } from './keys.js'
import { createLogicalBackup, restoreLogical } from './logical.js'
import { listBackups, loadBackup, type BackupManifest } from './manifest.js'
import { createPhysicalBackup } from './physical.js'
import { pruneBackups, type PrunePolicy, type PruneResult } from './retention.js'
import { restorePhysical } from './restore.js'
import type { OnProgress } from './tools.js'
import { verifyBackup, type VerifyResult } from './verify.js'

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

export async function createBackup(k: BackupDeps, input: CreateInput, onProgress?: OnProgress, signal?: AbortSignal): Promise<BackupSummary & { seconds: number }> {
  const t0 = Date.now()
  const cfg = k.config().backup
  const primary = k.instances.primary()
  const conn = await primary.connection('postgres')
  const encryption = input.encrypt ? { kek: await loadKek((n) => k.secrets.get(n), kekName(k)), secretName: kekName(k) } : undefined
  const common = { backupsDir: k.layout.backupsDir, conn, bins: k.bins, runAs: k.runAs, compression: cfg.compression, encryption, ...(input.label ? { label: input.label } : {}), ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) }
  let m: BackupManifest
  if (input.type === 'logical') {
    if (!input.db) throw BACKUP_INVALID({ message: 'A logical backup needs --db NAME.' })
    const release = k.locks.acquire(`db:${input.db}`, 'backup')
    try {
      m = await createLogicalBackup({ ...common, database: input.db })
    } finally {
      release()
    }
  } else {
    if (input.db) throw BACKUP_INVALID({ message: '--db is for logical backups; a physical backup covers the whole instance.' })
    m = await createPhysicalBackup(common)
  }
  return { ...summarize(m), seconds: (Date.now() - t0) / 1000 }
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
  port?: number | undefined
  targetTime?: string | undefined
  targetLsn?: string | undefined
  force: boolean
}

export async function restore(k: BackupDeps, input: RestoreInput, onProgress?: OnProgress, signal?: AbortSignal) {
  const t0 = Date.now()
  const { manifest } = await loadBackup(k.layout.backupsDir, input.id)
  const kek = await kekFor(k, manifest)
  await openBackupKey(k.layout.backupsDir, input.id, kek) // wrong/missing key: refuse first
  const primary = k.instances.primary()
  const conn: pg.ClientConfig = await primary.connection('postgres')
  if (manifest.type === 'logical') {
    if (input.toInstance || input.targetTime || input.targetLsn) {
      throw BACKUP_INVALID({ message: 'A logical backup restores into a database (--to-db); point-in-time needs a physical backup (see docs/backup.md).' })
    }
    const target = input.toDb ?? manifest.databases[0] ?? 'restored'
    const release = k.locks.acquire(`db:${target}`, 'restore')
    try {
      const r = await restoreLogical({ backupsDir: k.layout.backupsDir, id: input.id, conn, targetDb: target, force: input.force, bins: k.bins, runAs: k.runAs, kek, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) })
      return { id: input.id, kind: 'database' as const, target: r.database, port: null, dataDir: null, pitr: false, seconds: (Date.now() - t0) / 1000 }
    } finally {
      release()
    }
  }
  if (input.toDb) throw BACKUP_INVALID({ message: 'A physical backup restores into a new instance (--to-instance NAME).' })
  const name = input.toInstance ?? `restore-${input.id.slice(0, 15).toLowerCase()}`
  if (k.instances.get(name)) throw BACKUP_TARGET_EXISTS({ what: 'instance', name })
  const dataDir = k.layout.dataDir(name)
  const port = input.port ?? (await freePort())
  const r = await restorePhysical({
    backupsDir: k.layout.backupsDir,
    id: input.id,
    dataDir,
    port,
    bins: k.bins,
    runAs: k.runAs,
    kek,
    force: input.force,
    walDir: k.layout.walDir,
    ...(input.targetTime ? { targetTime: input.targetTime } : {}),
    ...(input.targetLsn ? { targetLsn: input.targetLsn } : {}),
    auth: { user: String(conn.user ?? 'postgres'), password: typeof conn.password === 'string' ? conn.password : undefined },
    logFile: k.layout.instanceLog(name),
    timeoutMs: k.config().postgres.startTimeoutSeconds * 1000 * 5,
    ...(onProgress ? { onProgress } : {}),
  })
  return { id: input.id, kind: 'instance' as const, target: name, port: r.port, dataDir: r.dataDir, pitr: r.pitr !== null, seconds: (Date.now() - t0) / 1000 }
}

export async function prune(k: BackupDeps, policy: PrunePolicy, dryRun: boolean): Promise<Omit<PruneResult, 'leftoversRemoved'> & { leftoversRemoved: string[] }> {
  const walDir = (await fsp.access(k.layout.walDir).then(() => true, () => false)) ? k.layout.walDir : undefined
  const r = await pruneBackups({ backupsDir: k.layout.backupsDir, walDir, policy, dryRun })
  return { ...r, leftoversRemoved: r.leftoversRemoved.map((l) => l.id) }
}

export async function rekey(k: BackupDeps, fromSecret: string, toSecret?: string): Promise<RekeyResult> {
  const to = toSecret ?? kekName(k)
  const oldKek = await loadKek((n) => k.secrets.get(n), fromSecret)
  const newKek = await loadKek((n) => k.secrets.get(n), to)
  return rekeyBackups({ backupsDir: k.layout.backupsDir, oldKeks: [oldKek], newKek, newSecretName: to })
}
