import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto'

/**
 * Streaming AES-256-GCM in authenticated frames, applied AFTER compression (ciphertext does not
 * compress).
 *
 * File layout:
 *   header  = "MFE1" | u32 frameSize | 16-byte random file id            (24 bytes)
 *   frame*  = u8 final | u32 ctLength | 12-byte nonce | ciphertext | 16-byte tag
 * Each frame's AAD is header | u64 frame index | u8 final. So a reordered frame fails (index),
 * a truncated file fails (no frame with final=1 before EOF, or a cut frame), a frame spliced
 * from another file fails (file id), and a flipped bit anywhere fails (tag).
 *
 * Envelope keys: every backup has its own random 32-byte data key; the manifest stores it
 * wrapped (AES-256-GCM) by the key-encryption key (KEK) from the vault, plus the KEK's id.
 * `backup rekey` rewraps that one small value; the data is never rewritten.
 */
export const FRAME_SIZE = 1 << 20
const MAGIC = Buffer.from('MFE1')
const HEADER_LEN = 24
export const ENCRYPTED_SUFFIX = '.mfenc'

export class CryptoFailure extends Error {}

function aad(header: Buffer, index: number, final: boolean): Buffer {
  const b = Buffer.alloc(header.length + 9)
  header.copy(b, 0)
  b.writeBigUInt64BE(BigInt(index), header.length)
  b[header.length + 8] = final ? 1 : 0
  return b
}

/** One frame as three pieces (head+nonce, ciphertext, tag): the ciphertext is not copied again. */
function sealFrame(key: Buffer, header: Buffer, index: number, final: boolean, plain: Buffer): Buffer[] {
  const head = Buffer.alloc(17)
  randomBytes(12).copy(head, 5)
  const c = createCipheriv('aes-256-gcm', key, head.subarray(5))
  c.setAAD(aad(header, index, final))
  const ct = c.update(plain)
  const rest = c.final() // empty for GCM
  head[0] = final ? 1 : 0
  head.writeUInt32BE(ct.length + rest.length, 1)
  return rest.length ? [head, ct, rest, c.getAuthTag()] : [head, ct, c.getAuthTag()]
}

/**
 * Async-iterable transform: plaintext chunks in, encrypted file bytes out. Chunks are sliced,
 * not copied, unless a frame spans two of them (the source must not reuse a chunk's memory,
 * which Node streams never do).
 */
export function encryptFrames(key: Buffer, frameSize = FRAME_SIZE) {
  return async function* (source: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
    const header = Buffer.alloc(HEADER_LEN)
    MAGIC.copy(header, 0)
    header.writeUInt32BE(frameSize, 4)
    randomBytes(16).copy(header, 8)
    yield header
    let pending: Buffer[] = []
    let pendingLen = 0
    let index = 0
    let held: Buffer | undefined // one full frame held back so the last one can carry final=1
    for await (const chunk of source) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      if (b.length === 0) continue
      pending.push(b)
      pendingLen += b.length
      while (pendingLen >= frameSize) {
        let frame: Buffer
        const first = pending[0]!
        if (first.length >= frameSize) {
          frame = first.subarray(0, frameSize)
          if (first.length > frameSize) pending[0] = first.subarray(frameSize)
          else pending.shift()
        } else {
          const all = Buffer.concat(pending, pendingLen)
          frame = all.subarray(0, frameSize)
          pending = all.length > frameSize ? [all.subarray(frameSize)] : []
        }
        pendingLen -= frameSize
        if (held) yield* sealFrame(key, header, index++, false, held)
        held = frame
      }
    }
    const tail = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen)
    if (held && tail.length === 0) {
      yield* sealFrame(key, header, index, true, held)
    } else {
      if (held) yield* sealFrame(key, header, index++, false, held)
      yield* sealFrame(key, header, index, true, tail)
    }
  }
}

/** Async-iterable transform: encrypted file bytes in, plaintext out; throws CryptoFailure. */
export function decryptFrames(key: Buffer) {
  return async function* (source: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
    let buf: Buffer = Buffer.alloc(0)
    let header: Buffer | undefined
    let index = 0
    let done = false
    let parts: Buffer[] = [] // received after `buf`, joined only once a whole frame is there
    let partsLen = 0
    for await (const chunk of source) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      parts.push(b)
      partsLen += b.length
      if (buf.length >= 5 && header && buf.length + partsLen < 5 + 12 + buf.readUInt32BE(1) + 16) continue
      buf = buf.length || parts.length > 1 ? Buffer.concat([buf, ...parts], buf.length + partsLen) : parts[0]!
      parts = []
      partsLen = 0
      if (!header) {
        if (buf.length < HEADER_LEN) continue
        header = Buffer.from(buf.subarray(0, HEADER_LEN))
        if (!header.subarray(0, 4).equals(MAGIC)) throw new CryptoFailure('not an encrypted MagFlock file')
        buf = buf.subarray(HEADER_LEN)
      }
      while (buf.length >= 5) {
        if (done) throw new CryptoFailure('data after the final frame')
        const final = buf[0] === 1
        const ctLen = buf.readUInt32BE(1)
        const need = 5 + 12 + ctLen + 16
        if (buf.length < need) break
        const nonce = buf.subarray(5, 17)
        const ct = buf.subarray(17, 17 + ctLen)
        const tag = buf.subarray(17 + ctLen, need)
        const d = createDecipheriv('aes-256-gcm', key, nonce)
        d.setAAD(aad(header, index, final))
        d.setAuthTag(tag)
        let plain: Buffer
        try {
          plain = d.update(ct)
          const rest = d.final() // throws unless the tag matches; empty for GCM
          if (rest.length) plain = Buffer.concat([plain, rest])
        } catch {
          throw new CryptoFailure(`frame ${index} failed authentication`)
        }
        index++
        buf = buf.subarray(need)
        if (final) done = true
        yield plain
      }
    }
    if (partsLen) buf = Buffer.concat([buf, ...parts])
    if (!header) throw new CryptoFailure('file shorter than its header')
    if (buf.length > 0) throw new CryptoFailure(done ? 'data after the final frame' : 'file is truncated inside a frame')
    if (!done) throw new CryptoFailure('file is truncated (no final frame)')
  }
}

/** A 32-byte KEK from the vault value: base64/hex of 32 bytes as is, anything else hashed. */
export function kekFromSecret(secret: string): Buffer {
  const t = secret.trim()
  if (/^[0-9a-f]{64}$/i.test(t)) return Buffer.from(t, 'hex')
  const b = Buffer.from(t, 'base64')
  if (b.length === 32 && /^[A-Za-z0-9+/=_-]+$/.test(t)) return b
  return createHash('sha256').update('magflock-backup-kek:').update(t).digest()
}

/** Public fingerprint of a KEK: names it in manifests without revealing it. */
export function keyIdOf(kek: Buffer): string {
  return createHmac('sha256', kek).update('magflock-backup-key-id').digest('hex').slice(0, 16)
}

export function newDataKey(): Buffer {
  return randomBytes(32)
}

/** nonce | ciphertext | tag, base64; AAD binds the backup id so a wrapped key cannot move. */
export function wrapKey(kek: Buffer, dataKey: Buffer, backupId: string): string {
  const nonce = randomBytes(12)
  const c = createCipheriv('aes-256-gcm', kek, nonce)
  c.setAAD(Buffer.from(`magflock-backup:${backupId}`))
  const ct = Buffer.concat([c.update(dataKey), c.final()])
  return Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64')
}

/** Throws CryptoFailure when the KEK is not the one that wrapped it. */
export function unwrapKey(kek: Buffer, wrapped: string, backupId: string): Buffer {
  const b = Buffer.from(wrapped, 'base64')
  if (b.length !== 12 + 32 + 16) throw new CryptoFailure('wrapped key has the wrong length')
  const d = createDecipheriv('aes-256-gcm', kek, b.subarray(0, 12))
  d.setAAD(Buffer.from(`magflock-backup:${backupId}`))
  d.setAuthTag(b.subarray(44))
  try {
    return Buffer.concat([d.update(b.subarray(12, 44)), d.final()])
  } catch {
    throw new CryptoFailure('key-encryption key does not match')
  }
}
