import path from 'node:path'
import { writeJsonAtomic } from '../platform/fs.js'
import { CryptoFailure, keyIdOf, kekFromSecret, unwrapKey, wrapKey } from './crypto.js'
import { BACKUP_KEY_MISMATCH, BACKUP_KEY_MISSING } from './errors.js'
import { loadBackup, listBackups, MANIFEST_FILE, type BackupManifest } from './manifest.js'

/** Default vault secret holding the backup key-encryption key. */
export const DEFAULT_KEK_SECRET = 'backup.kek'

/** `secret:NAME` or `NAME` from config backup.encryptionKey → the vault secret name. */
export function kekSecretName(configured: string | undefined): string {
  if (!configured) return DEFAULT_KEK_SECRET
  return configured.startsWith('secret:') ? configured.slice('secret:'.length) : configured
}

/** Reads the KEK from a secret getter; E_BACKUP_KEY_MISSING when absent. */
export async function loadKek(get: (name: string) => Promise<string | undefined>, secretName: string): Promise<Buffer> {
  const v = await get(secretName)
  if (!v) throw BACKUP_KEY_MISSING({ secret: secretName })
  return kekFromSecret(v)
}

/**
 * Loads a backup and, when it is encrypted, unwraps its data key — BEFORE anything else
 * happens, so a wrong or missing key is refused without writing a byte.
 */
export async function openBackupKey(
  backupsDir: string,
  id: string,
  kek: Buffer | undefined,
): Promise<{ dir: string; manifest: BackupManifest; dataKey: Buffer | undefined }> {
  const { dir, manifest } = await loadBackup(backupsDir, id)
  if (!manifest.encryption) return { dir, manifest, dataKey: undefined }
  if (!kek) throw BACKUP_KEY_MISSING({ secret: manifest.encryption.secretName })
  try {
    return { dir, manifest, dataKey: unwrapKey(kek, manifest.encryption.wrappedKey, id) }
  } catch (err) {
    if (err instanceof CryptoFailure) throw BACKUP_KEY_MISMATCH({ id, keyId: manifest.encryption.keyId }, { cause: err })
    throw err
  }
}

export interface RekeyResult {
  rewrapped: string[]
  skipped: Array<{ id: string; reason: string }>
  newKeyId: string
}

/**
 * Rewraps the data key of every encrypted backup (or only `ids`) from `oldKek` to `newKek`.
 * Only manifest.json changes (atomic rewrite); backup data is never rewritten. Backups
 * already under the new key are skipped; ones the old key cannot open are reported, not touched.
 */
export async function rekeyBackups(o: {
  backupsDir: string
  oldKeks: Buffer[]
  newKek: Buffer
  newSecretName: string
  ids?: string[]
}): Promise<RekeyResult> {
  const newKeyId = keyIdOf(o.newKek)
  const { complete } = await listBackups(o.backupsDir)
  const res: RekeyResult = { rewrapped: [], skipped: [], newKeyId }
  for (const m of complete) {
    if (o.ids && !o.ids.includes(m.id)) continue
    if (!m.encryption) continue
    const r = rewrapManifest(m, m.encryption, o.oldKeks, o.newKek, o.newSecretName)
    if ('skip' in r) {
      res.skipped.push({ id: m.id, reason: r.skip })
      continue
    }
    const { next } = r
    await writeJsonAtomic(path.join(o.backupsDir, m.id, MANIFEST_FILE), next)
    res.rewrapped.push(m.id)
  }
  return res
}

/**
 * An encrypted manifest with its data key wrapped again under `newKek` (the data is not
 * touched), or why it is skipped: already under the new key, or no offered key opens it.
 * One rule for the local directory and for object-store repositories.
 */
export function rewrapManifest(m: BackupManifest, enc: NonNullable<BackupManifest['encryption']>, oldKeks: Buffer[], newKek: Buffer, newSecretName: string): { next: BackupManifest; dataKey: Buffer } | { skip: string } {
  const newKeyId = keyIdOf(newKek)
  if (enc.keyId === newKeyId) return { skip: 'already under the new key' }
  for (const k of oldKeks) {
    let dataKey: Buffer
    try {
      dataKey = unwrapKey(k, enc.wrappedKey, m.id)
    } catch {
      continue // the next candidate
    }
    return { dataKey, next: { ...m, encryption: { ...enc, keyId: newKeyId, secretName: newSecretName, wrappedKey: wrapKey(newKek, dataKey, m.id) } } }
  }
  return { skip: `no offered key opens it (key id ${enc.keyId})` }
}
