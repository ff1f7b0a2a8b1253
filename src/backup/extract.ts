import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import { isMagflockError } from '../errors/index.js'
import type { OsUser } from '../platform/os-user.js'
import { spawnLong } from '../platform/process.js'
import { CryptoFailure, decryptFrames, ENCRYPTED_SUFFIX } from './crypto.js'
import { BACKUP_TOOL_FAILED, BACKUP_VERIFY_FAILED } from './errors.js'
import { type BackupManifest, type ManifestFile } from './manifest.js'
import { PHYSICAL_SUBDIR } from './physical.js'
import { allOrFirstError } from './tools.js'

/**
 * Unpacks a physical backup into a data dir: file → (decrypt) → decompress → tar -x.
 * tar runs as the postgres OS user so every restored file is owned by it. Every child's
 * exit status is checked; a broken stream anywhere fails the whole extraction.
 *
 * Unless `verify` is false, every backup file is hashed as it is read for extraction and
 * checked against manifest.json, so a restore reads the backup once instead of twice. The
 * caller checks the layout first (assertLayout) and deletes the target when this throws
 * E_BACKUP_VERIFY_FAILED (naming the file): the target is never started.
 */
export async function extractPhysical(o: {
  dir: string
  manifest: BackupManifest
  dataKey: Buffer | undefined
  dataDir: string
  runAs?: OsUser | undefined
  withManifest?: boolean
  verify?: boolean
  onBytes?: (n: number) => void
  /** Where the backup's files are read from (default: the files under `dir`). */
  reader?: BackupReader | undefined
}): Promise<void> {
  const reader = o.reader ?? localReader(o.dir)
  const names = await reader.names(PHYSICAL_SUBDIR)
  const plain = (n: string) => (n.endsWith(ENCRYPTED_SUFFIX) ? n.slice(0, -ENCRYPTED_SUFFIX.length) : n)
  const baseTar = names.find((n) => plain(n).startsWith('base.tar'))
  const walTar = names.find((n) => plain(n).startsWith('pg_wal.tar'))
  const manifestFile = names.find((n) => plain(n) === 'backup_manifest')
  if (!baseTar) throw BACKUP_VERIFY_FAILED({ id: o.manifest.id, file: `${PHYSICAL_SUBDIR}/base.tar`, reason: 'missing' })
  const checked = new Set<string>()
  const check = (name: string): Tap | undefined => {
    if (o.verify === false) return undefined
    const rel = `${PHYSICAL_SUBDIR}/${name}`
    const entry = o.manifest.files.find((f) => f.path === rel)
    if (!entry) throw BACKUP_VERIFY_FAILED({ id: o.manifest.id, file: rel, reason: 'not in the manifest' })
    checked.add(rel)
    return new Tap(o.manifest.id, reader, entry)
  }
  const rel = (name: string) => `${PHYSICAL_SUBDIR}/${name}`
  const baseTap = check(baseTar)
  const walTap = walTar ? check(walTar) : undefined
  // base.tar and pg_wal.tar go into different directories: both extract at the same time.
  const wal = async () => {
    if (!walTar) return
    const walDir = path.join(o.dataDir, 'pg_wal')
    await fsp.mkdir(walDir, { recursive: true, mode: 0o700 })
    if (o.runAs) await fsp.chown(walDir, o.runAs.uid, o.runAs.gid)
    await untar(reader, rel(walTar), walDir, o, walTap)
  }
  // A damaged file is the error to report, whichever extraction saw it.
  await allOrFirstError([untar(reader, rel(baseTar), o.dataDir, o, baseTap), wal()], (e) => BACKUP_VERIFY_FAILED.is(e))
  if (o.withManifest !== false && manifestFile) {
    const dest = path.join(o.dataDir, 'backup_manifest')
    const tap = check(manifestFile)
    await pipeline(await source(reader, rel(manifestFile), o.dataKey, o.manifest.id, undefined, tap), createWriteStream(dest, { mode: 0o600 }))
    await tap?.assertMatches()
    if (o.runAs) await fsp.chown(dest, o.runAs.uid, o.runAs.gid)
  }
  // Whatever the extraction did not read is hashed on its own: every file of the manifest is checked.
  if (o.verify !== false) {
    for (const f of o.manifest.files) {
      if (checked.has(f.path)) continue
      await new Tap(o.manifest.id, reader, f).assertMatches()
    }
  }
}

/**
 * Where extraction reads a backup's files from: the backup directory (localReader), or an
 * object-store repository streamed straight into extraction (repository/backups.ts).
 */
export interface BackupReader {
  /** File names in the backup's sub-directory `sub` (e.g. `base`). */
  names(sub: string): Promise<string[]>
  /** The bytes of file `rel` (relative to the backup dir) from byte `start` on. */
  open(rel: string, start?: number): Promise<Readable>
}

export function localReader(dir: string): BackupReader {
  return {
    names: async (sub) => fsp.readdir(path.join(dir, sub)),
    open: async (rel, start = 0) => createReadStream(path.join(dir, rel), { start, highWaterMark: 1 << 20 }),
  }
}

/** sha256 of a backup file's bytes as they stream past, checked against its manifest entry. */
class Tap {
  private readonly h = createHash('sha256')
  private bytes = 0
  constructor(
    private readonly id: string,
    private readonly reader: BackupReader,
    private readonly entry: ManifestFile,
  ) {}

  update(chunk: Buffer): void {
    this.h.update(chunk)
    this.bytes += chunk.length
  }

  /** Hashes what the consumer did not read (a reader may stop early), then compares. */
  async assertMatches(): Promise<void> {
    if (this.bytes < this.entry.size) {
      for await (const c of await this.reader.open(this.entry.path, this.bytes)) this.update(c as Buffer)
    }
    if (this.bytes !== this.entry.size) this.fail(`size ${this.bytes} != ${this.entry.size} in the manifest`)
    if (this.h.digest('hex') !== this.entry.sha256) this.fail('sha256 does not match the manifest')
  }

  /** After a failed extraction: was it the file (then say so) or the tools? */
  async isDamaged(): Promise<boolean> {
    const h = createHash('sha256')
    for await (const c of await this.reader.open(this.entry.path)) h.update(c as Buffer)
    return h.digest('hex') !== this.entry.sha256
  }

  private fail(reason: string): never {
    throw BACKUP_VERIFY_FAILED({ id: this.id, file: this.entry.path, reason })
  }
}

async function source(reader: BackupReader, rel: string, dataKey: Buffer | undefined, id: string, onBytes?: (n: number) => void, tap?: Tap): Promise<Readable> {
  const rs = await reader.open(rel)
  if (onBytes || tap) {
    rs.on('data', (c) => {
      tap?.update(c as Buffer)
      onBytes?.((c as Buffer).length)
    })
  }
  if (!dataKey) return rs
  const out = Readable.from(decryptFrames(dataKey)(rs))
  return out.on('error', (err) => {
    if (err instanceof CryptoFailure) out.destroy(BACKUP_VERIFY_FAILED({ id, file: rel, reason: err.message }))
  })
}

async function untar(
  reader: BackupReader,
  rel: string,
  dest: string,
  o: { manifest: BackupManifest; dataKey: Buffer | undefined; runAs?: OsUser | undefined; onBytes?: (n: number) => void },
  tap?: Tap,
): Promise<void> {
  try {
    await untarStream(reader, rel, dest, o, tap)
  } catch (err) {
    // A damaged file makes lz4/tar/decryption fail half-way: report the file, not the tool.
    if (tap && !BACKUP_VERIFY_FAILED.is(err) && (await tap.isDamaged().catch(() => false))) {
      throw BACKUP_VERIFY_FAILED({ id: o.manifest.id, file: rel, reason: 'sha256 does not match the manifest' }, { cause: err })
    }
    throw err
  }
  await tap?.assertMatches()
}

/**
 * lz4 | tar in one shell pipeline, so the decompressed stream (the whole data dir) goes from
 * lz4 to tar through a kernel pipe, as in the raw `lz4 -dc | tar -x`, not through Node; Node
 * feeds it the compressed bytes it hashes (and decrypts). PIPESTATUS names the tool that failed.
 */
const LZ4_TAR = [
  'lz4 -dc | tar -xf - -C "$1"',
  's=("${PIPESTATUS[@]}")',
  'if [ "${s[1]}" != 0 ]; then echo "tar exited ${s[1]}" >&2; exit 2; fi',
  'if [ "${s[0]}" != 0 ]; then echo "lz4 exited ${s[0]}" >&2; exit 3; fi',
].join('\n')

async function untarStream(reader: BackupReader, rel: string, dest: string, o: { manifest: BackupManifest; dataKey: Buffer | undefined; runAs?: OsUser | undefined; onBytes?: (n: number) => void }, tap?: Tap): Promise<void> {
  const name = path.basename(rel, ENCRYPTED_SUFFIX)
  const src = await source(reader, rel, o.dataKey, o.manifest.id, o.onBytes, tap)
  const lz4 = name.endsWith('.lz4')
  const tar = lz4
    ? spawnLong('bash', ['-c', LZ4_TAR, 'extract', dest], { runAs: o.runAs, detached: false, stdio: ['pipe', 'ignore', 'pipe'] })
    : spawnLong('tar', ['-xf', '-', '-C', dest], { runAs: o.runAs, detached: false, stdio: ['pipe', 'ignore', 'pipe'] })
  const tarErr = collect(tar.stderr)
  let work: Promise<unknown>
  if (name.endsWith('.zst')) {
    work = pipeline(src, zlib.createZstdDecompress(), tar.stdin!)
  } else if (name.endsWith('.gz')) {
    work = pipeline(src, zlib.createGunzip(), tar.stdin!)
  } else {
    work = pipeline(src, tar.stdin!)
  }
  const settle = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e)
  const [workErr, tarRes] = await Promise.all([settle(work), tar.catch((e: unknown) => e)])
  if (BACKUP_VERIFY_FAILED.is(workErr)) throw workErr
  // The reader's own error (e.g. an object store's GetObject failure naming the object).
  if (isMagflockError(workErr)) throw workErr
  const x = tarRes as { exitCode?: number; signal?: string; code?: string } | undefined
  if (x !== undefined && (x.code === 'ENOENT' || x.exitCode !== 0 || Boolean(x.signal))) {
    const tool = lz4 ? (x.exitCode === 3 ? 'lz4' : x.exitCode === 2 ? 'tar' : 'lz4 | tar') : 'tar'
    throw BACKUP_TOOL_FAILED({ tool, exit: describe(tarRes), stderr: await tarErr })
  }
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
