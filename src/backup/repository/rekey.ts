import { unwrapKey } from '../crypto.js'
import { BACKUP_VERIFY_FAILED } from '../errors.js'
import { rewrapManifest } from '../keys.js'
import { MANIFEST_FILE } from '../manifest.js'
import { BACKUPS_PREFIX, listRemote, loadRemoteBackup } from './backups.js'
import type { S3Repository } from './s3.js'
import { decodeWal, rewrapWal, WAL_PREFIX } from './wal.js'

/**
 * `backup rekey` in an object-store repository: the data key of every encrypted backup
 * (manifest.json) and of every encrypted WAL object (its header) is unwrapped with an old KEK
 * and wrapped with the new one. No data is re-encrypted: a backup's files are untouched, and a
 * WAL object is written again with the same ciphertext behind its new header.
 *
 * Atomic per object: each object is replaced by one PUT (an S3 PUT is all or nothing), and
 * read back and checked (the new key opens it: same data key for a manifest, a full decode with
 * its sha256 for a WAL object) before the next one. Resumable: an object already under the new
 * key is skipped, so a rekey interrupted at any point is finished by running it again.
 */
export interface RepoRekeyResult {
  repository: string
  rewrapped: string[]
  skipped: Array<{ id: string; reason: string }>
  walRewrapped: number
  /** WAL objects left as they are because they are already under the new key (or not encrypted). */
  walUnchanged: number
  /** WAL objects no offered key opens (or not readable as WAL objects): reported, not touched. */
  walSkipped: Array<{ name: string; reason: string }>
}

export async function rekeyRepository(repo: S3Repository, oldKeks: Buffer[], newKek: Buffer, newSecretName: string): Promise<RepoRekeyResult> {
  const res: RepoRekeyResult = { repository: repo.name, rewrapped: [], skipped: [], walRewrapped: 0, walUnchanged: 0, walSkipped: [] }
  for (const m of (await listRemote(repo)).complete) {
    if (!m.encryption) continue
    const r = rewrapManifest(m, m.encryption, oldKeks, newKek, newSecretName)
    if ('skip' in r) {
      res.skipped.push({ id: m.id, reason: r.skip })
      continue
    }
    const { next, dataKey } = r
    await repo.putBuffer(`${BACKUPS_PREFIX}${m.id}/${MANIFEST_FILE}`, Buffer.from(JSON.stringify(next, null, 2) + '\n'))
    // Read back: the stored manifest opens with the new key to the same data key.
    const back = await loadRemoteBackup(repo, m.id)
    let ok: boolean
    try {
      ok = back.encryption !== null && unwrapKey(newKek, back.encryption.wrappedKey, m.id).equals(dataKey)
    } catch {
      ok = false
    }
    if (!ok) throw BACKUP_VERIFY_FAILED({ id: m.id, file: `${repo.name}:${MANIFEST_FILE}`, reason: 'the rewrapped manifest does not open with the new key after it was stored' })
    res.rewrapped.push(m.id)
  }
  for (const o of await repo.list(WAL_PREFIX)) {
    const [sysid, name, ...rest] = o.key.slice(WAL_PREFIX.length).split('/')
    if (!sysid || !name || rest.length) continue
    const obj = await repo.getBuffer(o.key)
    if (!obj) continue // removed meanwhile (retention)
    const r = rewrapWal(obj, name, sysid, oldKeks, newKek, newSecretName)
    if ('skip' in r) {
      if (r.skip === 'not encrypted' || r.skip === 'already under the new key') res.walUnchanged++
      else res.walSkipped.push({ name: `${sysid}/${name}`, reason: r.skip })
      continue
    }
    await repo.putBuffer(o.key, r.obj)
    const back = await repo.getBuffer(o.key)
    if (!back) throw BACKUP_VERIFY_FAILED({ id: `wal/${sysid}`, file: `${repo.name}:${name}`, reason: 'gone after it was rewrapped' })
    await decodeWal(back, name, sysid, async () => newKek) // throws naming the object unless whole and open with the new key
    res.walRewrapped++
  }
  return res
}
