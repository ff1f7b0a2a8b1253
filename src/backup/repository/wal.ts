import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import type { OsUser } from '../../platform/os-user.js'
import { decryptFrames, encryptFrames, FRAME_SIZE, keyIdOf, newDataKey, unwrapKey, wrapKey } from '../crypto.js'
import { BACKUP_KEY_MISMATCH, BACKUP_KEY_MISSING, BACKUP_VERIFY_FAILED } from '../errors.js'
import { parseSegmentName } from '../wal.js'
import type { S3Repository } from './s3.js'

/**
 * WAL in object-store repositories: `<prefix>/wal/<system identifier>/<segment or history file>`,
 * each compressed with zstd and, when backups are encrypted (backup.encryptionKey), encrypted
 * with the same envelope as backups: its own data key wrapped by the KEK, AES-256-GCM frames.
 * The system identifier in the key keeps a new cluster (a DR drill on a fresh machine starts
 * one) from ever writing over the WAL of the cluster it restores.
 *
 * Object format (docs/backup.md "WAL objects"):
 *   "MFW1" | u32 header length | header (JSON) | body
 *   header = { v: 1, name, rawBytes, sha256 (of the raw file), compression: "zstd",
 *              encryption: null | { algorithm, keyId, secretName, wrappedKey, frameSize } }
 *   body   = zstd(raw), or MFE1 frames of zstd(raw) keyed by the unwrapped data key;
 *            the wrapped key's AAD is "magflock-backup:wal/<sysid>/<name>".
 */
export const WAL_PREFIX = 'wal/'
const MAGIC = Buffer.from('MFW1')
const zstd = promisify(zlib.zstdCompress)
const unzstd = promisify(zlib.zstdDecompress)

export interface WalEncryption {
  kek: Buffer
  secretName: string
}

interface WalHeader {
  v: 1
  name: string
  rawBytes: number
  sha256: string
  compression: 'zstd'
  encryption: null | { algorithm: 'aes-256-gcm-frames-v1'; keyId: string; secretName: string; wrappedKey: string; frameSize: number }
}

export function walKey(sysid: string, name: string): string {
  return `${WAL_PREFIX}${sysid}/${name}`
}

/** Archived WAL files worth shipping: complete segments and timeline history files. */
export function isShippable(name: string): boolean {
  const p = parseSegmentName(name)
  return (p !== undefined && !p.partial) || /^[0-9A-F]{8}\.history$/.test(name)
}

async function collect(gen: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const b of gen) parts.push(b)
  return Buffer.concat(parts)
}

async function* one(b: Buffer): AsyncGenerator<Buffer> {
  yield b
}

export async function encodeWal(raw: Buffer, name: string, sysid: string, enc?: WalEncryption): Promise<Buffer> {
  const compressed = await zstd(raw, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } })
  let body: Buffer = compressed
  let encryption: WalHeader['encryption'] = null
  if (enc) {
    const dataKey = newDataKey()
    encryption = { algorithm: 'aes-256-gcm-frames-v1', keyId: keyIdOf(enc.kek), secretName: enc.secretName, wrappedKey: wrapKey(enc.kek, dataKey, `wal/${sysid}/${name}`), frameSize: FRAME_SIZE }
    body = await collect(encryptFrames(dataKey)(one(compressed)))
  }
  const header: WalHeader = { v: 1, name, rawBytes: raw.length, sha256: createHash('sha256').update(raw).digest('hex'), compression: 'zstd', encryption }
  const h = Buffer.from(JSON.stringify(header))
  const len = Buffer.alloc(4)
  len.writeUInt32BE(h.length)
  return Buffer.concat([MAGIC, len, h, body])
}

/** Decodes and checks a WAL object (name, size, sha256); a wrong key or a flipped bit throws. */
export async function decodeWal(obj: Buffer, name: string, sysid: string, getKek: (secretName: string) => Promise<Buffer | undefined>): Promise<Buffer> {
  const bad = (reason: string) => BACKUP_VERIFY_FAILED({ id: `wal/${sysid}`, file: name, reason })
  if (obj.length < 8 || !obj.subarray(0, 4).equals(MAGIC)) throw bad('not a MagFlock WAL object')
  const hl = obj.readUInt32BE(4)
  let header: WalHeader
  try {
    header = JSON.parse(obj.subarray(8, 8 + hl).toString('utf8')) as WalHeader
  } catch {
    throw bad('unreadable header')
  }
  if (header.name !== name) throw bad(`object holds ${header.name}`)
  let body = obj.subarray(8 + hl)
  if (header.encryption) {
    const kek = await getKek(header.encryption.secretName)
    if (!kek) throw BACKUP_KEY_MISSING({ secret: header.encryption.secretName })
    let dataKey: Buffer
    try {
      dataKey = unwrapKey(kek, header.encryption.wrappedKey, `wal/${sysid}/${name}`)
    } catch (err) {
      throw BACKUP_KEY_MISMATCH({ id: `wal/${sysid}/${name}`, keyId: header.encryption.keyId }, { cause: err })
    }
    try {
      body = await collect(decryptFrames(dataKey)(one(body)))
    } catch (err) {
      throw bad(`decryption failed: ${(err as Error).message}`)
    }
  }
  let raw: Buffer
  try {
    raw = await unzstd(body)
  } catch {
    throw bad('zstd data is damaged')
  }
  if (raw.length !== header.rawBytes) throw bad(`size ${raw.length} != ${header.rawBytes}`)
  if (createHash('sha256').update(raw).digest('hex') !== header.sha256) throw bad('sha256 does not match')
  return raw
}

/** Names of the WAL files a repository holds for a cluster. */
export async function listRemoteWal(repo: S3Repository, sysid: string): Promise<Map<string, number>> {
  const base = `${WAL_PREFIX}${sysid}/`
  return new Map((await repo.list(base)).map((o) => [o.key.slice(base.length), o.size]))
}

export async function pushWalFile(repo: S3Repository, walDir: string, name: string, sysid: string, enc?: WalEncryption): Promise<{ rawBytes: number; storedBytes: number }> {
  const raw = await fsp.readFile(path.join(walDir, name))
  const obj = await encodeWal(raw, name, sysid, enc)
  await repo.putBuffer(walKey(sysid, name), obj)
  return { rawBytes: raw.length, storedBytes: obj.length }
}

/**
 * Fills `destDir` with the WAL a restore needs, read back from the repositories (the first one
 * holding each file): every history file and every segment from `fromSegNo` on, on any
 * timeline. Files already in destDir are kept. Returns the names fetched.
 */
export async function fetchWal(o: {
  repos: S3Repository[]
  sysid: string
  fromSegNo: bigint
  destDir: string
  getKek: (secretName: string) => Promise<Buffer | undefined>
  runAs?: OsUser | undefined
  signal?: AbortSignal | undefined
}): Promise<string[]> {
  await fsp.mkdir(o.destDir, { recursive: true, mode: 0o700 })
  if (o.runAs) await fsp.chown(o.destDir, o.runAs.uid, o.runAs.gid)
  const have = new Set(await fsp.readdir(o.destDir))
  const where = new Map<string, S3Repository[]>()
  for (const r of o.repos) {
    for (const name of (await listRemoteWal(r, o.sysid)).keys()) {
      const p = parseSegmentName(name)
      const wanted = (p && !p.partial && p.segNo >= o.fromSegNo) || /^[0-9A-F]{8}\.history$/.test(name)
      if (wanted && !have.has(name)) where.set(name, [...(where.get(name) ?? []), r])
    }
  }
  const fetched: string[] = []
  for (const [name, repos] of [...where].sort(([a], [b]) => a.localeCompare(b))) {
    o.signal?.throwIfAborted()
    let lastErr: unknown
    for (const r of repos) {
      try {
        const obj = await r.getBuffer(walKey(o.sysid, name))
        if (!obj) continue
        const raw = await decodeWal(obj, name, o.sysid, o.getKek)
        const tmp = path.join(o.destDir, `.${name}.tmp`)
        await fsp.writeFile(tmp, raw, { mode: 0o600 })
        if (o.runAs) await fsp.chown(tmp, o.runAs.uid, o.runAs.gid)
        await fsp.rename(tmp, path.join(o.destDir, name))
        fetched.push(name)
        lastErr = undefined
        break
      } catch (err) {
        lastErr = err
      }
    }
    if (lastErr) throw lastErr
  }
  return fetched
}

/**
 * Rewraps the data key in a WAL object's header from one of `oldKeks` to `newKek` (the body —
 * the ciphertext — is kept byte for byte). Returns the new object, or why it stays as it is.
 */
export function rewrapWal(
  obj: Buffer,
  name: string,
  sysid: string,
  oldKeks: Buffer[],
  newKek: Buffer,
  newSecretName: string,
): { obj: Buffer } | { skip: string } {
  if (obj.length < 8 || !obj.subarray(0, 4).equals(MAGIC)) return { skip: 'not a MagFlock WAL object' }
  const hl = obj.readUInt32BE(4)
  let header: WalHeader
  try {
    header = JSON.parse(obj.subarray(8, 8 + hl).toString('utf8')) as WalHeader
  } catch {
    return { skip: 'unreadable header' }
  }
  if (!header.encryption) return { skip: 'not encrypted' }
  const newKeyId = keyIdOf(newKek)
  if (header.encryption.keyId === newKeyId) return { skip: 'already under the new key' }
  const aad = `wal/${sysid}/${name}`
  let dataKey: Buffer | undefined
  for (const k of oldKeks) {
    try {
      dataKey = unwrapKey(k, header.encryption.wrappedKey, aad)
      break
    } catch {
      // the next candidate
    }
  }
  if (!dataKey) return { skip: `no offered key opens it (key id ${header.encryption.keyId})` }
  const next: WalHeader = { ...header, encryption: { ...header.encryption, keyId: newKeyId, secretName: newSecretName, wrappedKey: wrapKey(newKek, dataKey, aad) } }
  const h = Buffer.from(JSON.stringify(next))
  const len = Buffer.alloc(4)
  len.writeUInt32BE(h.length)
  return { obj: Buffer.concat([MAGIC, len, h, obj.subarray(8 + hl)]) }
}
