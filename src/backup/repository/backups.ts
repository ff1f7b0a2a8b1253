import { createHash } from 'node:crypto'
import { createWriteStream, promises as fsp } from 'node:fs'
import path from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { fsyncDir, writeJsonAtomic } from '../../platform/fs.js'
import { BACKUP_INCOMPLETE, BACKUP_NOT_FOUND, BACKUP_VERIFY_FAILED } from '../errors.js'
import { BackupManifest, compareBackups, ID_RE, MANIFEST_FILE, type IncompleteBackup } from '../manifest.js'
import type { BackupReader } from '../extract.js'
import type { OnProgress } from '../tools.js'
import type { VerifyProblem } from '../verify.js'
import type { S3Repository } from './s3.js'

/**
 * Backups in an object-store repository. Same files as the local repository, under
 * `<prefix>/backups/<id>/`, and the same completion protocol: every file is uploaded and
 * checked (listed with its manifest size), then `manifest.json` is written LAST. A backup is
 * listed only when its manifest object exists, so an upload killed at any moment (kernel
 * kill -9, network down) is never listed; a failure we see removes what was uploaded (and
 * aborts the multipart upload); a writer that died leaves objects without a manifest, which
 * `backup list --repo` shows as interrupted and `backup prune --repo` removes.
 */
export const BACKUPS_PREFIX = 'backups/'

const UPLOAD_FILES_IN_FLIGHT = 3

/** Pushes in progress in this process: their objects are not leftovers. */
const active = new Set<string>()

function backupPrefix(id: string): string {
  return `${BACKUPS_PREFIX}${id}/`
}

export interface PushOptions {
  /** Files already stored whole (streamed while the backup was made): not uploaded again. */
  skip?: (f: BackupManifest['files'][number]) => boolean
  /** Learns each multipart upload id (the writer's journal, see push.ts). */
  onUploadId?: (key: string, uploadId: string) => void
}

export async function pushBackup(repo: S3Repository, backupDir: string, m: BackupManifest, onProgress?: OnProgress, signal?: AbortSignal, opts: PushOptions = {}): Promise<{ bytes: number; seconds: number }> {
  const t0 = Date.now()
  const base = backupPrefix(m.id)
  const tag = `${repo.name}:${m.id}`
  active.add(tag)
  const total = m.files.reduce((s, f) => s + f.size, 0)
  let done = 0
  try {
    // A few files at a time (each one multipart with its own parts in flight).
    let next = 0
    const worker = async () => {
      while (next < m.files.length) {
        const f = m.files[next++]!
        signal?.throwIfAborted()
        if (!opts.skip?.(f)) {
          onProgress?.({ phase: 'upload', message: `${repo.name}: ${f.path}`, bytesDone: done, bytesTotal: total, fraction: total ? done / total : 0 })
          await repo.putFile(base + f.path, path.join(backupDir, f.path), { sha256: f.sha256 }, signal, opts.onUploadId)
        }
        done += f.size
      }
    }
    await Promise.all(Array.from({ length: Math.min(UPLOAD_FILES_IN_FLIGHT, m.files.length) }, worker))
    // Stored and checked before the manifest makes it visible: every object there, with its size.
    const stored = new Map((await repo.list(base)).map((o) => [o.key, o.size]))
    for (const f of m.files) {
      const size = stored.get(base + f.path)
      if (size !== f.size) throw BACKUP_VERIFY_FAILED({ id: m.id, file: `${repo.name}:${f.path}`, reason: size === undefined ? 'missing after upload' : `stored size ${size} != ${f.size}` })
    }
    await repo.putBuffer(base + MANIFEST_FILE, Buffer.from(JSON.stringify(m, null, 2) + '\n'))
    onProgress?.({ phase: 'upload', message: `${repo.name}: stored`, bytesDone: total, bytesTotal: total, fraction: 1 })
    return { bytes: total, seconds: (Date.now() - t0) / 1000 }
  } catch (err) {
    // Nothing half-uploaded stays: unfinished multipart uploads are aborted, objects deleted.
    await removeRemoteBackup(repo, m.id).catch(() => undefined)
    throw err
  } finally {
    active.delete(tag)
  }
}

/** Deletes the manifest first (the backup stops being listed), then everything else. */
export async function removeRemoteBackup(repo: S3Repository, id: string): Promise<void> {
  const base = backupPrefix(id)
  await repo.abortUploads(base)
  const keys = (await repo.list(base)).map((o) => o.key)
  const manifest = keys.filter((k) => k === base + MANIFEST_FILE)
  if (manifest.length) await repo.deleteMany(manifest)
  const rest = keys.filter((k) => k !== base + MANIFEST_FILE)
  if (rest.length) await repo.deleteMany(rest)
}

export interface RemoteListing {
  complete: BackupManifest[]
  incomplete: Array<Omit<IncompleteBackup, 'dir'>>
}

export async function listRemote(repo: S3Repository): Promise<RemoteListing> {
  const objects = await repo.list(BACKUPS_PREFIX)
  const ids = new Map<string, boolean>()
  for (const o of objects) {
    const [id, ...rest] = o.key.slice(BACKUPS_PREFIX.length).split('/')
    if (!id || !ID_RE.test(id)) continue
    ids.set(id, (ids.get(id) ?? false) || rest.join('/') === MANIFEST_FILE)
  }
  const complete: BackupManifest[] = []
  const incomplete: RemoteListing['incomplete'] = []
  for (const [id, hasManifest] of ids) {
    if (!hasManifest) {
      const running = active.has(`${repo.name}:${id}`)
      incomplete.push({ id, state: running ? 'running' : 'interrupted', reason: running ? 'upload in progress' : 'objects without manifest.json: the upload was interrupted' })
      continue
    }
    const m = await readRemoteManifest(repo, id).catch(() => undefined)
    if (m) complete.push(m)
    else incomplete.push({ id, state: 'interrupted', reason: 'manifest.json unreadable' })
  }
  complete.sort(compareBackups)
  return { complete, incomplete }
}

async function readRemoteManifest(repo: S3Repository, id: string): Promise<BackupManifest | undefined> {
  const b = await repo.getBuffer(backupPrefix(id) + MANIFEST_FILE)
  if (!b) return undefined
  const m = BackupManifest.parse(JSON.parse(b.toString('utf8')))
  if (m.id !== id) throw new Error(`manifest names ${m.id}`)
  return m
}

/** The manifest of a complete remote backup, or E_BACKUP_NOT_FOUND / E_BACKUP_INCOMPLETE. */
export async function loadRemoteBackup(repo: S3Repository, id: string): Promise<BackupManifest> {
  if (!ID_RE.test(id)) throw BACKUP_NOT_FOUND({ id })
  let m: BackupManifest | undefined
  try {
    m = await readRemoteManifest(repo, id)
  } catch (err) {
    if ((err as Error).name === 'MagflockError' || (err as { code?: string }).code?.startsWith('E_')) throw err
    throw BACKUP_INCOMPLETE({ id, reason: `manifest.json in repository ${repo.name} is unreadable` }, { cause: err })
  }
  if (m) return m
  const any = await repo.list(backupPrefix(id))
  if (any.length) throw BACKUP_INCOMPLETE({ id, reason: `its upload to repository ${repo.name} was interrupted` })
  throw BACKUP_NOT_FOUND({ id })
}

export interface FetchResult {
  manifest: BackupManifest
  problems: VerifyProblem[]
  bytes: number
}

/**
 * Reads a remote backup back, hashing every object against its manifest.
 *  - `dest` given: the files are written to `<dest>/<id>/` (manifest last) and the first
 *    damaged object throws E_BACKUP_VERIFY_FAILED naming it; what was written is removed.
 *  - no `dest`: nothing is written; every problem (missing, resized, altered, extra) is returned.
 */
export async function fetchBackup(repo: S3Repository, id: string, dest: string | undefined, onProgress?: OnProgress, signal?: AbortSignal): Promise<FetchResult> {
  const m = await loadRemoteBackup(repo, id)
  const base = backupPrefix(id)
  const problems: VerifyProblem[] = []
  const fail = (p: VerifyProblem) => {
    if (dest) throw BACKUP_VERIFY_FAILED({ id, file: p.file, reason: `${p.reason} (repository ${repo.name})` }, { details: { problems: [p] } })
    problems.push(p)
  }
  for (const p of await remoteLayout(repo, m)) fail(p)
  const out = dest ? path.join(dest, id) : undefined
  const total = m.files.reduce((s, f) => s + f.size, 0)
  let done = 0
  try {
    if (out) await fsp.mkdir(out, { recursive: true, mode: 0o700 })
    for (const f of m.files) {
      if (problems.some((p) => p.file === f.path)) continue
      signal?.throwIfAborted()
      onProgress?.({ phase: dest ? 'download' : 'verify', message: `${repo.name}: ${f.path}`, bytesDone: done, bytesTotal: total, fraction: total ? done / total : 0 })
      const body = await repo.get(base + f.path)
      if (!body) {
        fail({ file: f.path, reason: 'missing' })
        continue
      }
      const h = createHash('sha256')
      let n = 0
      const target = out ? path.join(out, f.path) : undefined
      if (target) await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 })
      const tap = new Writable({
        write(chunk: Buffer, _enc, cb) {
          h.update(chunk)
          n += chunk.length
          cb()
        },
      })
      try {
        if (target) {
          const ws = createWriteStream(target, { mode: 0o600 })
          body.on('data', (c: Buffer) => {
            h.update(c)
            n += c.length
          })
          if (signal) await pipeline(body, ws, { signal })
          else await pipeline(body, ws)
        } else {
          await pipeline(body, tap)
        }
      } catch (err) {
        throw repo.fail('GetObject', base + f.path, err)
      }
      done += n
      if (n !== f.size) fail({ file: f.path, reason: `size ${n} != ${f.size} in the manifest` })
      else if (h.digest('hex') !== f.sha256) fail({ file: f.path, reason: 'sha256 does not match the manifest' })
    }
    if (out) {
      await writeJsonAtomic(path.join(out, MANIFEST_FILE), m)
      await fsyncDir(out)
    }
  } catch (err) {
    if (out) await fsp.rm(out, { recursive: true, force: true })
    throw err
  }
  return { manifest: m, problems, bytes: done }
}

/** Every object of the manifest stored with its size, and nothing else (the cheap check). */
async function remoteLayout(repo: S3Repository, m: BackupManifest): Promise<VerifyProblem[]> {
  const base = backupPrefix(m.id)
  const stored = new Map((await repo.list(base)).map((o) => [o.key, o.size]))
  const problems: VerifyProblem[] = []
  for (const f of m.files) {
    const size = stored.get(base + f.path)
    if (size === undefined) problems.push({ file: f.path, reason: 'missing' })
    else if (size !== f.size) problems.push({ file: f.path, reason: `size ${size} != ${f.size} in the manifest` })
  }
  for (const k of stored.keys()) {
    const rel = k.slice(base.length)
    if (rel !== MANIFEST_FILE && !m.files.some((f) => f.path === rel)) problems.push({ file: rel, reason: 'not in the manifest' })
  }
  return problems
}

/** Throws E_BACKUP_VERIFY_FAILED naming the first missing, resized or extra object. */
export async function assertRemoteLayout(repo: S3Repository, m: BackupManifest): Promise<void> {
  const problems = await remoteLayout(repo, m)
  const p = problems[0]
  if (p) throw BACKUP_VERIFY_FAILED({ id: m.id, file: p.file, reason: `${p.reason} (repository ${repo.name})` }, { details: { problems } })
}

/** Ranges read at once per object, and their size: the read-ahead of a streamed restore. */
const RANGE_BYTES = 8 << 20
const RANGES_IN_FLIGHT = 4

/**
 * A backup read straight from the repository into extraction (extract.ts BackupReader): each
 * object is fetched as ranges, RANGES_IN_FLIGHT at a time, and handed on in order, so the
 * download runs ahead of decryption, decompression and tar instead of being staged on disk.
 * The sizes come from the manifest (assertRemoteLayout checked the stored ones); extraction
 * hashes every byte against it, so an object changed meanwhile fails like a damaged one.
 */
export function remoteReader(repo: S3Repository, m: BackupManifest): BackupReader {
  const base = backupPrefix(m.id)
  const sizeOf = (rel: string) => m.files.find((f) => f.path === rel)?.size
  return {
    names: async (sub) => m.files.filter((f) => path.dirname(f.path) === sub).map((f) => path.basename(f.path)),
    open: async (rel, start = 0) => {
      const size = sizeOf(rel)
      if (size === undefined) throw BACKUP_VERIFY_FAILED({ id: m.id, file: rel, reason: 'not in the manifest' })
      return Readable.from(ranges(repo, base + rel, start, size), { objectMode: false, highWaterMark: 1 << 20 })
    },
  }
}

/** Pause before re-reading a range after attempt `n` failed: exponential, jittered, capped. */
export function rangeBackoffMs(n: number): number {
  return Math.min(2000, 100 * 2 ** (n - 1)) * (0.5 + Math.random() / 2)
}

async function* ranges(repo: S3Repository, key: string, start: number, size: number): AsyncGenerator<Buffer> {
  const ac = new AbortController()
  /**
   * The SDK retries a GET until its response starts (repo.get throws E_BACKUP_REPO_* after
   * that); a connection that breaks while the body streams, or a short body, is retried here:
   * the range is read again from its start, up to the repository's maxAttempts in all.
   */
  const fetchRange = async (from: number): Promise<Buffer[]> => {
    const end = Math.min(size, from + RANGE_BYTES) - 1
    for (let attempt = 1; ; attempt++) {
      const body = await repo.get(key, { start: from, end }, ac.signal)
      if (!body) throw repo.fail('GetObject', key, new Error('the object is gone'))
      const parts: Buffer[] = []
      let n = 0
      try {
        for await (const c of body) {
          parts.push(c as Buffer)
          n += (c as Buffer).length
        }
        if (n !== end - from + 1) throw new Error(`range ${from}-${end}: ${n} bytes`)
        return parts
      } catch (err) {
        if (ac.signal.aborted || attempt >= repo.cfg.maxAttempts) throw repo.fail('GetObject', key, err)
      }
      await sleep(rangeBackoffMs(attempt), undefined, { signal: ac.signal }).catch(() => undefined)
    }
  }
  const queue: Array<Promise<Buffer[]>> = []
  let next = start
  const fill = () => {
    while (queue.length < RANGES_IN_FLIGHT && next < size) {
      const p = fetchRange(next)
      p.catch(() => undefined) // awaited in order below; not an unhandled rejection meanwhile
      queue.push(p)
      next += RANGE_BYTES
    }
  }
  try {
    fill()
    while (queue.length) {
      const parts = await queue.shift()!
      fill()
      for (const c of parts) yield c
    }
  } finally {
    ac.abort()
  }
}

/** Leftovers of interrupted uploads: objects without a manifest and unfinished multipart uploads. */
export async function cleanupRemote(repo: S3Repository, dryRun: boolean): Promise<string[]> {
  const { incomplete } = await listRemote(repo)
  const gone = incomplete.filter((i) => i.state !== 'running').map((i) => i.id)
  if (!dryRun) {
    for (const id of gone) await removeRemoteBackup(repo, id)
    // Multipart uploads of ids that have no object at all yet.
    const isActive = (k: string) => active.has(`${repo.name}:${k.slice(BACKUPS_PREFIX.length).split('/')[0] ?? ''}`)
    const stray = await repo.abortUploads(BACKUPS_PREFIX, isActive).catch(() => [] as string[])
    for (const k of stray) {
      const id = k.slice(BACKUPS_PREFIX.length).split('/')[0]
      if (id && !gone.includes(id)) gone.push(id)
    }
  }
  return gone
}
