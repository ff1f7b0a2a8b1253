import { createReadStream, createWriteStream, promises as fsp } from 'node:fs'
import path from 'node:path'
import { Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import type { OsUser } from '../platform/os-user.js'
import { spawnLong } from '../platform/process.js'
import { CryptoFailure, decryptFrames, ENCRYPTED_SUFFIX } from './crypto.js'
import { BACKUP_TOOL_FAILED, BACKUP_VERIFY_FAILED } from './errors.js'
import type { BackupManifest } from './manifest.js'
import { PHYSICAL_SUBDIR } from './physical.js'

/**
 * Unpacks a physical backup into a data dir: file → (decrypt) → decompress → tar -x.
 * tar runs as the postgres OS user so every restored file is owned by it. Every child's
 * exit status is checked; a broken stream anywhere fails the whole extraction.
 */
export async function extractPhysical(o: {
  dir: string
  manifest: BackupManifest
  dataKey: Buffer | undefined
  dataDir: string
  runAs?: OsUser | undefined
  withManifest?: boolean
  onBytes?: (n: number) => void
}): Promise<void> {
  const base = path.join(o.dir, PHYSICAL_SUBDIR)
  const names = await fsp.readdir(base)
  const plain = (n: string) => (n.endsWith(ENCRYPTED_SUFFIX) ? n.slice(0, -ENCRYPTED_SUFFIX.length) : n)
  const baseTar = names.find((n) => plain(n).startsWith('base.tar'))
  const walTar = names.find((n) => plain(n).startsWith('pg_wal.tar'))
  const manifestFile = names.find((n) => plain(n) === 'backup_manifest')
  if (!baseTar) throw BACKUP_VERIFY_FAILED({ id: o.manifest.id, file: `${PHYSICAL_SUBDIR}/base.tar`, reason: 'missing' })
  await untar(path.join(base, baseTar), o.dataDir, o)
  if (walTar) {
    const walDir = path.join(o.dataDir, 'pg_wal')
    await fsp.mkdir(walDir, { recursive: true, mode: 0o700 })
    if (o.runAs) await fsp.chown(walDir, o.runAs.uid, o.runAs.gid)
    await untar(path.join(base, walTar), walDir, o)
  }
  if (o.withManifest !== false && manifestFile) {
    const dest = path.join(o.dataDir, 'backup_manifest')
    await pipeline(source(path.join(base, manifestFile), o.dataKey, o.manifest.id, manifestFile), createWriteStream(dest, { mode: 0o600 }))
    if (o.runAs) await fsp.chown(dest, o.runAs.uid, o.runAs.gid)
  }
}

function source(file: string, dataKey: Buffer | undefined, id: string, name: string, onBytes?: (n: number) => void): Readable {
  const rs = createReadStream(file, { highWaterMark: 1 << 20 })
  if (onBytes) rs.on('data', (c) => onBytes((c as Buffer).length))
  if (!dataKey) return rs
  const out = Readable.from(decryptFrames(dataKey)(rs))
  return out.on('error', (err) => {
    if (err instanceof CryptoFailure) out.destroy(BACKUP_VERIFY_FAILED({ id, file: name, reason: err.message }))
  })
}

async function untar(file: string, dest: string, o: { manifest: BackupManifest; dataKey: Buffer | undefined; runAs?: OsUser | undefined; onBytes?: (n: number) => void }): Promise<void> {
  const name = path.basename(file, ENCRYPTED_SUFFIX)
  const src = source(file, o.dataKey, o.manifest.id, path.basename(file), o.onBytes)
  const tar = spawnLong('tar', ['-xf', '-', '-C', dest], { runAs: o.runAs, detached: false, stdio: ['pipe', 'ignore', 'pipe'] })
  const tarErr = collect(tar.stderr)
  const feed = async (into: Writable) => pipeline(src, into)
  let work: Promise<unknown>
  let lz4: ReturnType<typeof spawnLong> | undefined
  let lz4Err: Promise<string> | undefined
  if (name.endsWith('.lz4')) {
    lz4 = spawnLong('lz4', ['-dc'], { detached: false, stdio: ['pipe', 'pipe', 'pipe'] })
    lz4Err = collect(lz4.stderr)
    work = Promise.all([feed(lz4.stdin!), pipeline(lz4.stdout!, tar.stdin!)])
  } else if (name.endsWith('.zst')) {
    work = pipeline(src, zlib.createZstdDecompress(), tar.stdin!)
  } else if (name.endsWith('.gz')) {
    work = pipeline(src, zlib.createGunzip(), tar.stdin!)
  } else {
    work = feed(tar.stdin!)
  }
  const settle = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e)
  const [workErr, lz4Res, tarRes] = await Promise.all([
    settle(work),
    lz4 ? lz4.catch((e: unknown) => e) : Promise.resolve(undefined),
    tar.catch((e: unknown) => e),
  ])
  if (BACKUP_VERIFY_FAILED.is(workErr)) throw workErr
  const bad = (r: unknown) => {
    const x = r as { exitCode?: number; signal?: string; code?: string } | undefined
    return x !== undefined && (x.code === 'ENOENT' || x.exitCode !== 0 || Boolean(x.signal))
  }
  if (lz4 && bad(lz4Res)) throw BACKUP_TOOL_FAILED({ tool: 'lz4', exit: describe(lz4Res), stderr: (await lz4Err) ?? '' })
  if (bad(tarRes)) throw BACKUP_TOOL_FAILED({ tool: 'tar', exit: describe(tarRes), stderr: await tarErr })
  if (workErr) throw BACKUP_TOOL_FAILED({ tool: 'extract', exit: 'stream error', stderr: (workErr as Error).message ?? String(workErr) })
}

function describe(r: unknown): string {
  const x = r as { exitCode?: number; signal?: string; code?: string }
  if (x.code === 'ENOENT') return 'not installed'
  return x.signal ? `killed by ${x.signal}` : `exit ${x.exitCode ?? 'unknown'}`
}

function collect(s: Readable | null | undefined): Promise<string> {
  return new Promise((resolve) => {
    if (!s) return resolve('')
    let out = ''
    s.setEncoding('utf8')
    s.on('data', (c: string) => {
      out = (out + c).slice(-4000)
    })
    s.on('end', () => resolve(out))
    s.on('error', () => resolve(out))
  })
}
