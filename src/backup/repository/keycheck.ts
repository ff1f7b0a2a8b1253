import { CryptoFailure, unwrapKey } from '../crypto.js'
import { BACKUP_KEY_MISMATCH, BACKUP_KEY_MISSING } from '../errors.js'
import type { BackupManifest } from '../manifest.js'

/** The key check of keys.ts/openBackupKey for a manifest that is not on local disk yet. */
export function openKeyOf(m: BackupManifest, kek: Buffer | undefined): Buffer | undefined {
  if (!m.encryption) return undefined
  if (!kek) throw BACKUP_KEY_MISSING({ secret: m.encryption.secretName })
  try {
    return unwrapKey(kek, m.encryption.wrappedKey, m.id)
  } catch (err) {
    if (err instanceof CryptoFailure) throw BACKUP_KEY_MISMATCH({ id: m.id, keyId: m.encryption.keyId }, { cause: err })
    throw err
  }
}
