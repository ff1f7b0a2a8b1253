#!/usr/bin/env node
// Reads a MagFlock backup without MagFlock: Node (>= 22) only, no dependencies.
// The format is specified in docs/backup.md ("The encrypted backup format").
//
//   MAGFLOCK_BACKUP_KEK=... node decrypt-backup.mjs backup BACKUP_DIR OUT_DIR
//       every file of BACKUP_DIR (a backup directory holding manifest.json, as in
//       <state>/backups/<id>/ or downloaded from <prefix>/backups/<id>/) is checked against
//       the manifest's sha256, decrypted when it ends in .mfenc, and written to OUT_DIR
//       without that suffix. Then, for a physical backup:
//         mkdir data && lz4 -dc OUT_DIR/base/base.tar.lz4 | tar -xf - -C data
//         tar -xf OUT_DIR/base/pg_wal.tar -C data/pg_wal
//   MAGFLOCK_BACKUP_KEK=... node decrypt-backup.mjs wal OBJECT_FILE SYSTEM_ID NAME OUT_FILE
//       one WAL object (<prefix>/wal/<system id>/<name>) back to the raw segment.
//
// The key-encryption key is the value of the vault secret (backup.kek by default), read from
// the MAGFLOCK_BACKUP_KEK environment variable or from the file named by
// MAGFLOCK_BACKUP_KEK_FILE, never from the command line. Exit 0 on success, 1 on any error
// (a damaged file, a wrong key), with the reason on stderr.
import { createDecipheriv, createHash } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'

const MAGIC = Buffer.from('MFE1')
const HEADER_LEN = 24

function fail(msg) {
  process.stderr.write(`decrypt-backup: ${msg}\n`)
  process.exit(1)
}

/** The KEK from the secret value: 64 hex digits or base64 of 32 bytes as is, anything else sha256("magflock-backup-kek:" + value). */
function kekFromSecret(secret) {
  const t = secret.trim()
  if (/^[0-9a-f]{64}$/i.test(t)) return Buffer.from(t, 'hex')
  const b = Buffer.from(t, 'base64')
  if (b.length === 32 && /^[A-Za-z0-9+/=_-]+$/.test(t)) return b
  return createHash('sha256').update('magflock-backup-kek:').update(t).digest()
}

function readKek() {
  const v = process.env.MAGFLOCK_BACKUP_KEK ?? (process.env.MAGFLOCK_BACKUP_KEK_FILE ? readFileSync(process.env.MAGFLOCK_BACKUP_KEK_FILE, 'utf8') : undefined)
  if (!v) fail('set MAGFLOCK_BACKUP_KEK (or MAGFLOCK_BACKUP_KEK_FILE) to the backup key-encryption key')
  return kekFromSecret(v)
}

/** wrapped = base64(nonce 12 | ciphertext 32 | tag 16), AES-256-GCM, AAD "magflock-backup:" + context. */
function unwrapKey(kek, wrapped, context) {
  const b = Buffer.from(wrapped, 'base64')
  if (b.length !== 60) fail('wrapped key has the wrong length')
  const d = createDecipheriv('aes-256-gcm', kek, b.subarray(0, 12))
  d.setAAD(Buffer.from(`magflock-backup:${context}`))
  d.setAuthTag(b.subarray(44))
  try {
    return Buffer.concat([d.update(b.subarray(12, 44)), d.final()])
  } catch {
    fail('the key-encryption key does not open this backup (wrong key)')
  }
}

/** MFE1 frames: header "MFE1" | u32 frameSize | 16-byte file id; frames u8 final | u32 len | 12-byte nonce | ct | 16-byte tag; AAD header | u64 index | u8 final. */
async function* decryptFrames(key, source) {
  let buf = Buffer.alloc(0)
  let header
  let index = 0
  let done = false
  for await (const chunk of source) {
    buf = Buffer.concat([buf, chunk])
    if (!header) {
      if (buf.length < HEADER_LEN) continue
      header = buf.subarray(0, HEADER_LEN)
      if (!header.subarray(0, 4).equals(MAGIC)) throw new Error('not an encrypted MagFlock file')
      buf = buf.subarray(HEADER_LEN)
    }
    while (buf.length >= 5) {
      if (done) throw new Error('data after the final frame')
      const final = buf[0] === 1
      const len = buf.readUInt32BE(1)
      const need = 5 + 12 + len + 16
      if (buf.length < need) break
      const aad = Buffer.alloc(HEADER_LEN + 9)
      header.copy(aad, 0)
      aad.writeBigUInt64BE(BigInt(index), HEADER_LEN)
      aad[HEADER_LEN + 8] = final ? 1 : 0
      const d = createDecipheriv('aes-256-gcm', key, buf.subarray(5, 17))
      d.setAAD(aad)
      d.setAuthTag(buf.subarray(17 + len, need))
      let plain
      try {
        plain = Buffer.concat([d.update(buf.subarray(17, 17 + len)), d.final()])
      } catch {
        throw new Error(`frame ${index} failed authentication`)
      }
      index++
      buf = buf.subarray(need)
      if (final) done = true
      yield plain
    }
  }
  if (!header) throw new Error('file shorter than its header')
  if (buf.length > 0 || !done) throw new Error('file is truncated')
}

async function sha256File(file) {
  const h = createHash('sha256')
  for await (const c of createReadStream(file)) h.update(c)
  return h.digest('hex')
}

async function backup(dir, out) {
  const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'))
  if (m.formatVersion !== 1) fail(`unknown manifest formatVersion ${m.formatVersion}`)
  let dataKey
  if (m.encryption) {
    if (m.encryption.algorithm !== 'aes-256-gcm-frames-v1') fail(`unknown algorithm ${m.encryption.algorithm}`)
    dataKey = unwrapKey(readKek(), m.encryption.wrappedKey, m.id)
  }
  for (const f of m.files) {
    const src = path.join(dir, f.path)
    if ((await sha256File(src)) !== f.sha256) fail(`${f.path}: sha256 does not match the manifest (damaged)`)
    const enc = f.path.endsWith('.mfenc')
    const dest = path.join(out, enc ? f.path.slice(0, -'.mfenc'.length) : f.path)
    mkdirSync(path.dirname(dest), { recursive: true })
    try {
      if (enc) {
        if (!dataKey) fail(`${f.path} is encrypted but the manifest has no key`)
        await pipeline(createReadStream(src), (s) => decryptFrames(dataKey, s), createWriteStream(dest))
      } else {
        await pipeline(createReadStream(src), createWriteStream(dest))
      }
    } catch (err) {
      fail(`${f.path}: ${err.message}`)
    }
    process.stdout.write(`${dest}\n`)
  }
}

/** WAL object: "MFW1" | u32 header length | JSON header | body = zstd(raw) or MFE1 frames of zstd(raw). */
async function wal(file, sysid, name, out) {
  const obj = readFileSync(file)
  if (!obj.subarray(0, 4).equals(Buffer.from('MFW1'))) fail('not a MagFlock WAL object')
  const hl = obj.readUInt32BE(4)
  const h = JSON.parse(obj.subarray(8, 8 + hl).toString('utf8'))
  if (h.name !== name) fail(`the object holds ${h.name}, not ${name}`)
  let body = obj.subarray(8 + hl)
  if (h.encryption) {
    const key = unwrapKey(readKek(), h.encryption.wrappedKey, `wal/${sysid}/${name}`)
    const parts = []
    try {
      for await (const p of decryptFrames(key, [body])) parts.push(p)
    } catch (err) {
      fail(err.message)
    }
    body = Buffer.concat(parts)
  }
  const raw = zlib.zstdDecompressSync(body)
  if (raw.length !== h.rawBytes || createHash('sha256').update(raw).digest('hex') !== h.sha256) fail('WAL object is damaged (size or sha256)')
  writeFileSync(out, raw)
  process.stdout.write(`${out}\n`)
}

const [cmd, ...args] = process.argv.slice(2)
if (cmd === 'backup' && args.length === 2) await backup(args[0], args[1])
else if (cmd === 'wal' && args.length === 4) await wal(args[0], args[1], args[2], args[3])
else fail('usage: decrypt-backup.mjs backup BACKUP_DIR OUT_DIR | wal OBJECT_FILE SYSTEM_ID NAME OUT_FILE')
