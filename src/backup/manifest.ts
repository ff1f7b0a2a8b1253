import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, promises as fsp } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { fsyncDir, readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { BACKUP_INCOMPLETE, BACKUP_NOT_FOUND } from './errors.js'
import { isProcessAliveSync } from '../platform/pids.js'

/**
 * One backup = one directory `<backupsDir>/<id>` holding the backup files and `manifest.json`.
 *
 * Completion protocol (what makes a backup restorable):
 *   1. everything is written into `<id>.partial/` (with `owner.json`: our pid),
 *   2. every file is fsynced and hashed, then manifest.json is written LAST (fsync),
 *   3. the directory is renamed `<id>.partial` → `<id>` and the parent dir fsynced.
 * So a backup killed at any moment is never listed as complete: it stays `.partial` (owner
 * dead → "interrupted"), or is renamed `<id>.failed` when we saw the failure ourselves.
 */
export const MANIFEST_FILE = 'manifest.json'
export const OWNER_FILE = 'owner.json'
export const PARTIAL_SUFFIX = '.partial'
export const FAILED_SUFFIX = '.failed'

export const Compression = z.enum(['lz4', 'zstd', 'gzip', 'none'])
export type Compression = z.infer<typeof Compression>

export const ManifestFile = z.object({ path: z.string(), size: z.number(), sha256: z.string() })
export type ManifestFile = z.infer<typeof ManifestFile>

export const EncryptionInfo = z.object({
  algorithm: z.literal('aes-256-gcm-frames-v1'),
  keyId: z.string(),
  secretName: z.string(),
  wrappedKey: z.string(),
  frameSize: z.number(),
})
export type EncryptionInfo = z.infer<typeof EncryptionInfo>

export const BackupManifest = z.object({
  formatVersion: z.literal(1),
  id: z.string(),
  type: z.enum(['physical', 'logical']),
  label: z.string(),
  format: z.enum(['tar', 'directory']),
  startLsn: z.string(),
  stopLsn: z.string(),
  startTime: z.string(),
  stopTime: z.string(),
  timeline: z.number(),
  pgVersion: z.string(),
  systemIdentifier: z.string().optional(),
  databases: z.array(z.string()),
  compression: Compression,
  encryption: EncryptionInfo.nullable(),
  tool: z.string(),
  sourceBytes: z.number(),
  totalBytes: z.number(),
  files: z.array(ManifestFile),
})
export type BackupManifest = z.infer<typeof BackupManifest>

export function newBackupId(type: 'physical' | 'logical', now = new Date()): string {
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return `${ts}-${type === 'physical' ? 'p' : 'l'}-${randomBytes(3).toString('hex')}`
}

export const ID_RE = /^[0-9]{8}T[0-9]{6}Z-[pl]-[0-9a-f]{6}$/

export function backupDir(backupsDir: string, id: string): string {
  return path.join(backupsDir, id)
}

export async function sha256File(file: string, onBytes?: (n: number) => void): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer)
    onBytes?.((chunk as Buffer).length)
  }
  return h.digest('hex')
}

/** Every regular file under dir (relative, '/'-separated, sorted), except the manifest/owner. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (rel: string) => {
    for (const e of await fsp.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) await walk(r)
      else if (e.isFile() && r !== MANIFEST_FILE && r !== OWNER_FILE) out.push(r)
    }
  }
  await walk('')
  return out.sort()
}

/**
 * fsync + sha256 every file (the "files" section), then fsync every directory under dir. Files
 * are done a few at a time, each one's fsync running alongside its hash (the writer was told not
 * to sync: this is the one fsync per file). `known` digests, computed while the files were
 * written (or still being computed: a promise), are reused when the size still matches, so
 * those files are not read again.
 */
export async function describeFiles(
  dir: string,
  onBytes?: (n: number) => void,
  known?: Map<string, { size: number; sha256: string } | Promise<{ size: number; sha256: string } | undefined>>,
): Promise<ManifestFile[]> {
  const rels = await listFiles(dir)
  const files: ManifestFile[] = new Array<ManifestFile>(rels.length)
  const one = async (i: number) => {
    const rel = rels[i]!
    const abs = path.join(dir, rel)
    const fh = await fsp.open(abs, 'r')
    try {
      const st = await fh.stat()
      const digest = async () => {
        const k = await known?.get(rel)
        return k && k.size === st.size ? k.sha256 : sha256File(abs, onBytes)
      }
      const [, sha256] = await Promise.all([fh.sync(), digest()])
      files[i] = { path: rel, size: st.size, sha256 }
    } finally {
      await fh.close()
    }
  }
  let next = 0
  const worker = async () => {
    while (next < rels.length) await one(next++)
  }
  // The directories' entries are all there already: their fsyncs run alongside the files'.
  const dirs = [...new Set(rels.map((r) => path.dirname(r)).filter((d) => d !== '.'))]
  await Promise.all([...Array.from({ length: Math.min(4, rels.length) }, worker), ...dirs.map((d) => fsyncDir(path.join(dir, d)))])
  return files
}

/** Step 1: create `<id>.partial` with our pid in owner.json. */
export async function beginBackup(backupsDir: string, id: string, mode = 0o700): Promise<string> {
  await fsp.mkdir(backupsDir, { recursive: true })
  const dir = path.join(backupsDir, id + PARTIAL_SUFFIX)
  await fsp.mkdir(dir, { mode })
  // Not fsynced: after a crash a missing or torn owner.json reads as "interrupted", which is
  // what the backup then is.
  await fsp.writeFile(path.join(dir, OWNER_FILE), JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }), { mode: 0o600 })
  return dir
}

/**
 * Steps 2–3: manifest last, fsync, rename to `<id>`. The manifest is written in place (no temp
 * file and rename): inside `<id>.partial` nothing reads it, and the rename of the directory,
 * after the manifest and the directory are fsynced, is what makes the backup complete. So
 * three syncs in a row: the manifest, `<id>.partial`, the backups directory.
 */
export async function completeBackup(backupsDir: string, partialDir: string, manifest: BackupManifest): Promise<string> {
  const writeManifest = async () => {
    const fh = await fsp.open(path.join(partialDir, MANIFEST_FILE), 'w', 0o600)
    try {
      await fh.writeFile(JSON.stringify(manifest, null, 2) + '\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
  }
  await Promise.all([writeManifest(), fsp.rm(path.join(partialDir, OWNER_FILE), { force: true })])
  await fsyncDir(partialDir)
  const final = path.join(backupsDir, manifest.id)
  await fsp.rename(partialDir, final)
  await fsyncDir(backupsDir)
  return final
}

/** We saw the failure ourselves: mark it `<id>.failed` with the reason (kept for inspection). */
export async function failBackup(partialDir: string, reason: string): Promise<void> {
  try {
    await writeJsonAtomic(path.join(partialDir, 'failed.json'), { reason, at: new Date().toISOString() })
    await fsp.rename(partialDir, partialDir.slice(0, -PARTIAL_SUFFIX.length) + FAILED_SUFFIX)
  } catch {
    // best effort: the directory still ends in .partial and will be found as interrupted
  }
}

export interface IncompleteBackup {
  id: string
  dir: string
  state: 'running' | 'interrupted' | 'failed'
  reason: string
}


export async function readManifest(dir: string): Promise<BackupManifest | undefined> {
  return readJsonFile(path.join(dir, MANIFEST_FILE), (v) => BackupManifest.parse(v))
}

export interface BackupListing {
  complete: BackupManifest[]
  incomplete: IncompleteBackup[]
}

/** Complete backups ordered by stop LSN then stop time (never by name), plus leftovers. */
export async function listBackups(backupsDir: string): Promise<BackupListing> {
  let entries: string[]
  try {
    entries = await fsp.readdir(backupsDir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { complete: [], incomplete: [] }
    throw err
  }
  const complete: BackupManifest[] = []
  const incomplete: IncompleteBackup[] = []
  for (const name of entries) {
    const dir = path.join(backupsDir, name)
    if (name.endsWith(PARTIAL_SUFFIX)) {
      const owner = await readJsonFile(path.join(dir, OWNER_FILE), (v) => z.object({ pid: z.number() }).parse(v)).catch(() => undefined)
      const alive = owner !== undefined && owner.pid !== process.pid ? isProcessAliveSync(owner.pid) : owner?.pid === process.pid
      incomplete.push({
        id: name.slice(0, -PARTIAL_SUFFIX.length),
        dir,
        state: alive ? 'running' : 'interrupted',
        reason: alive ? 'in progress' : 'interrupted: the process writing it died before the manifest was written',
      })
    } else if (name.endsWith(FAILED_SUFFIX)) {
      const f = await readJsonFile(path.join(dir, 'failed.json'), (v) => z.object({ reason: z.string() }).parse(v)).catch(() => undefined)
      incomplete.push({ id: name.slice(0, -FAILED_SUFFIX.length), dir, state: 'failed', reason: f?.reason ?? 'failed' })
    } else if (ID_RE.test(name)) {
      const m = await readManifest(dir).catch(() => undefined)
      if (m) complete.push(m)
      else incomplete.push({ id: name, dir, state: 'interrupted', reason: 'manifest.json missing or unreadable' })
    }
  }
  complete.sort(compareBackups)
  return { complete, incomplete }
}

export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/')
  return (BigInt('0x' + (hi ?? '0')) << 32n) + BigInt('0x' + (lo ?? '0'))
}

/** Oldest first: stop LSN, then stop time. */
export function compareBackups(a: BackupManifest, b: BackupManifest): number {
  const la = lsnToBigInt(a.stopLsn)
  const lb = lsnToBigInt(b.stopLsn)
  if (a.type === 'physical' && b.type === 'physical' && la !== lb) return la < lb ? -1 : 1
  return a.stopTime.localeCompare(b.stopTime) || (la < lb ? -1 : la > lb ? 1 : 0)
}

/** The manifest of a complete backup, or E_BACKUP_NOT_FOUND / E_BACKUP_INCOMPLETE. */
export async function loadBackup(backupsDir: string, id: string): Promise<{ dir: string; manifest: BackupManifest }> {
  if (!/^[A-Za-z0-9._-]+$/.test(id)) throw BACKUP_NOT_FOUND({ id })
  const dir = path.join(backupsDir, id)
  let m: BackupManifest | undefined
  try {
    m = await readManifest(dir)
  } catch (err) {
    throw BACKUP_INCOMPLETE({ id, reason: 'manifest.json is unreadable' }, { cause: err })
  }
  if (!m) {
    for (const suffix of [PARTIAL_SUFFIX, FAILED_SUFFIX]) {
      try {
        await fsp.access(dir + suffix)
        throw BACKUP_INCOMPLETE({ id, reason: suffix === PARTIAL_SUFFIX ? 'interrupted or still running' : 'it failed' })
      } catch (err) {
        if (BACKUP_INCOMPLETE.is(err)) throw err
      }
    }
    throw BACKUP_NOT_FOUND({ id })
  }
  return { dir, manifest: m }
}

/** Removes leftovers whose writer is gone (interrupted or failed). Returns their ids. */
export async function cleanupIncomplete(backupsDir: string, dryRun = false): Promise<IncompleteBackup[]> {
  const { incomplete } = await listBackups(backupsDir)
  const gone = incomplete.filter((i) => i.state !== 'running')
  if (!dryRun) for (const i of gone) await fsp.rm(i.dir, { recursive: true, force: true })
  return gone
}
