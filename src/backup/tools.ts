import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { once } from 'node:events'
import type pg from 'pg'
import type { ProgressEvent } from '../api/route.js'
import type { OsUser } from '../platform/os-user.js'
import { redact, spawnLong } from '../platform/process.js'
import { BACKUP_TOOL_FAILED } from './errors.js'
import { decryptFrames, encryptFrames, ENCRYPTED_SUFFIX } from './crypto.js'
import { beginBackup } from './manifest.js'

export type Progress = Omit<ProgressEvent, 'type'>
export type OnProgress = (p: Progress) => void

/** libpq settings for a Postgres tool. PGPASSWORD here never reaches the child: the process runner turns it into a 0600 passfile (src/platform/process.ts). */
export function pgEnv(conn: pg.ClientConfig, database?: string): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: String(conn.host ?? '127.0.0.1'),
    PGPORT: String(conn.port ?? 5432),
    PGUSER: String(conn.user ?? 'postgres'),
    PGDATABASE: database ?? String(conn.database ?? 'postgres'),
    PGCONNECT_TIMEOUT: '10',
    PGAPPNAME: 'magflock-backup',
  }
  if (typeof conn.password === 'string') env.PGPASSWORD = conn.password
  return env
}

export function secretsOf(conn: pg.ClientConfig): string[] {
  return typeof conn.password === 'string' && conn.password ? [conn.password] : []
}

/**
 * Runs a tool to completion, feeding its stderr lines to `onLine` (progress parsing), and
 * throws E_BACKUP_TOOL_FAILED unless it exited 0. We check the exit status of every child:
 * a backup tool that died half-way must never leave a valid-looking backup behind.
 */
export async function runTool(
  bin: string,
  args: string[],
  opts: { runAs?: OsUser | undefined; env?: Record<string, string>; secrets?: string[]; cwd?: string; onLine?: (line: string) => void; signal?: AbortSignal },
): Promise<void> {
  const child = spawnLong(bin, args, {
    runAs: opts.runAs,
    env: opts.env ?? {},
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    detached: false,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let tail = ''
  let buf = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    buf += chunk
    const parts = buf.split(/[\r\n]/)
    buf = parts.pop() ?? ''
    for (const line of parts) {
      if (!line) continue
      tail = (tail + '\n' + line).slice(-4000)
      opts.onLine?.(line)
    }
  })
  const res = await child.catch((err: unknown) => err as { exitCode?: number; signal?: string; code?: string; message?: string })
  if (buf) tail = (tail + '\n' + buf).slice(-4000)
  const tool = path.basename(bin)
  const r = res as { exitCode?: number; signal?: string; code?: string; message?: string }
  if (r.code === 'ENOENT') throw BACKUP_TOOL_FAILED({ tool, exit: 'not found', stderr: `${bin} is missing` })
  if (r.exitCode !== 0 || r.signal) {
    throw BACKUP_TOOL_FAILED({
      tool,
      exit: r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode ?? 'unknown'}`,
      stderr: redact(tail, opts.secrets),
    })
  }
}

/** Encrypts `file` into `file.mfenc` and removes the plaintext. */
export async function encryptFileInPlace(
  file: string,
  key: Buffer,
  onBytes?: (n: number) => void,
): Promise<{ path: string; size: number; sha256: string }> {
  const out = file + ENCRYPTED_SUFFIX
  const src = createReadStream(file, { highWaterMark: 1 << 20 })
  if (onBytes) src.on('data', (c) => onBytes((c as Buffer).length))
  // Hash the ciphertext on its way to disk, so the manifest needs no second read.
  const t = hashTap()
  const ws = createWriteStream(out, { mode: 0o600 })
  await pipeline(src, encryptFrames(key), t.tap, ws)
  await fsp.rm(file)
  return { path: out, ...t.digest() }
}

/**
 * Decrypts `file.mfenc` into `dest` (throws CryptoFailure on any tampering) and returns the
 * size and sha256 of the encrypted bytes it read, for the manifest check without a second read.
 */
export async function decryptFile(file: string, dest: string, key: Buffer): Promise<FileDigest> {
  const t = hashTap()
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), t.tap, decryptFrames(key), createWriteStream(dest, { mode: 0o600 }))
  return t.digest()
}

/** A pipeline stage that passes chunks through while hashing them (size and sha256). */
function hashTap(): { tap: (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>; digest(): { size: number; sha256: string } } {
  const h = createHash('sha256')
  let size = 0
  return {
    async *tap(chunks) {
      for await (const c of chunks) {
        h.update(c)
        size += c.length
        yield c
      }
    },
    digest: () => ({ size, sha256: h.digest('hex') }),
  }
}

/** Sum of the sizes of the files under dir (for progress while a tool writes there). */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0
  const walk = async (d: string) => {
    let entries
    try {
      entries = await fsp.readdir(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) total += (await fsp.stat(p).catch(() => ({ size: 0 }))).size
    }
  }
  await walk(dir)
  return total
}

export async function chownTo(p: string, runAs: OsUser | undefined): Promise<void> {
  if (runAs) await fsp.chown(p, runAs.uid, runAs.gid)
}

export interface FileDigest {
  size: number
  sha256: string
}

/** Where the bytes of one followed file go (see followWrites). */
export interface FollowSink {
  write(chunk: Buffer): Promise<void>
  /** All bytes written: the digest of what the sink produced. */
  end(): Promise<FileDigest>
  /** Given up on this file: drop whatever the sink produced. */
  abort(): Promise<void>
}

/**
 * A second consumer of the bytes a sink stores (the object-store upload of the same file, see
 * repository/push.ts). It never throws: a failed upload is the uploader's business and never
 * fails the local backup. `write` may wait (backpressure from the upload).
 */
export interface Tee {
  write(chunk: Buffer): Promise<void>
  end(): Promise<void>
  abort(): Promise<void>
}

/** Sink: sha256 of the file itself (and the bytes to `tee`, when given). */
export function hashSink(tee?: Tee): FollowSink {
  const h = createHash('sha256')
  let size = 0
  return {
    async write(c) {
      h.update(c)
      size += c.length
      await tee?.write(c)
    },
    async end() {
      await tee?.end()
      return { size, sha256: h.digest('hex') }
    },
    abort: async () => {
      await tee?.abort()
    },
  }
}

/**
 * Sink: encrypts into `out` (the frames of encryptFrames), hashing the ciphertext as it is
 * written, and handing the same ciphertext to `tee` when given.
 */
export function encryptSink(out: string, key: Buffer, tee?: Tee): FollowSink {
  const input = new PassThrough({ highWaterMark: 4 << 20 })
  const h = createHash('sha256')
  let size = 0
  const tap = async function* (frames: AsyncIterable<Buffer>) {
    for await (const f of frames) {
      h.update(f)
      size += f.length
      await tee?.write(f)
      yield f
    }
  }
  const done = pipeline(input, encryptFrames(key), tap, createWriteStream(out, { mode: 0o600 }))
  done.catch(() => undefined) // awaited by end(); abort() discards it
  return {
    async write(c) {
      if (!input.write(c)) await Promise.race([once(input, 'drain'), done])
    },
    async end() {
      input.end()
      try {
        await done
      } catch (err) {
        await tee?.abort()
        throw err
      }
      await tee?.end()
      return { size, sha256: h.digest('hex') }
    },
    async abort() {
      input.destroy()
      await done.catch(() => undefined)
      await tee?.abort()
      await fsp.rm(out, { force: true })
    },
  }
}

/**
 * Runs `step` every `intervalMs`, one at a time (a slow one just skips ticks; its errors are
 * the step's own business). `stop()` ends the ticks and waits for the one in flight.
 */
export function pollSerially(step: () => Promise<void>, intervalMs: number): { stop(): Promise<void> } {
  let busy: Promise<void> | undefined
  const timer = setInterval(() => {
    busy ??= step()
      .catch(() => undefined)
      .finally(() => {
        busy = undefined
      })
  }, intervalMs)
  return {
    async stop() {
      clearInterval(timer)
      await busy
    },
  }
}

/**
 * Reads files while a tool is still appending to them (pg_basebackup writing base.tar.lz4) and
 * feeds what was appended since the last look — from the page cache, on the other core — to a
 * sink per file: a hash (so the manifest needs no second pass over the output) or an encryptor
 * (so encryption needs none either). Only for files the tool writes strictly sequentially.
 * `finish()` (after the tool exited 0) reads the rest and returns the sinks' digests by file
 * name. A file that could not be followed is left out (its sink aborted): the caller treats it
 * the ordinary way, and describeFiles only trusts a digest whose size matches the file.
 */
export function followWrites(dir: string, follow: (name: string) => boolean, sinkFor: (name: string) => FollowSink, intervalMs = 100) {
  interface Followed {
    fh: FileHandle
    sink: FollowSink
    offset: number
    broken: boolean
  }
  const files = new Map<string, Followed>()
  const step = async () => {
    const names = await fsp.readdir(dir).catch(() => [] as string[])
    for (const name of names) {
      if (!follow(name)) continue
      let f = files.get(name)
      if (!f) {
        const fh = await fsp.open(path.join(dir, name), 'r').catch(() => undefined)
        if (!fh) continue
        f = { fh, sink: sinkFor(name), offset: 0, broken: false }
        files.set(name, f)
      }
      if (f.broken) continue
      try {
        for (;;) {
          const buf = Buffer.allocUnsafe(1 << 20)
          const { bytesRead } = await f.fh.read(buf, 0, buf.length, f.offset)
          if (bytesRead === 0) break
          f.offset += bytesRead
          await f.sink.write(buf.subarray(0, bytesRead))
        }
      } catch {
        f.broken = true
      }
    }
  }
  const { stop } = pollSerially(step, intervalMs)
  const closeAll = async (keep: Set<string>) => {
    for (const [name, f] of files) {
      await f.fh.close().catch(() => undefined)
      if (!keep.has(name)) await f.sink.abort().catch(() => undefined)
    }
  }
  return {
    async finish(): Promise<Map<string, FileDigest>> {
      await stop()
      await step()
      const out = new Map<string, FileDigest>()
      for (const [name, f] of files) {
        if (f.broken) continue
        const d = await f.sink.end().catch(() => undefined)
        if (d) out.set(name, d)
      }
      await closeAll(new Set(out.keys()))
      return out
    },
    async abort(): Promise<void> {
      await stop()
      await closeAll(new Set())
    },
  }
}

/**
 * Like Promise.all, but settles only when every task has (none is left writing into a directory
 * about to be removed), then throws the first error, or the first one `prefer` picks.
 */
export async function allOrFirstError(tasks: Array<Promise<unknown>>, prefer?: (err: unknown) => boolean): Promise<void> {
  const failed = (await Promise.allSettled(tasks)).filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown)
  if (failed.length) throw (prefer ? failed.find(prefer) : undefined) ?? failed[0]
}

/** `<backupsDir>/<id>.partial` (owner.json inside), both owned by the tool's OS user. */
export async function makeBackupDir(backupsDir: string, id: string, runAs: OsUser | undefined): Promise<string> {
  await fsp.mkdir(backupsDir, { recursive: true })
  await chownTo(backupsDir, runAs)
  const partial = await beginBackup(backupsDir, id)
  await chownTo(partial, runAs)
  return partial
}

/**
 * Reads the source facts (`read`, one connection) while `<id>.partial` is being made, both
 * before the backup tool starts. When the source cannot be read the new directory is removed
 * again: a backup that never started leaves nothing behind.
 */
export async function startBackup<T>(read: () => Promise<T>, backupsDir: string, id: string, runAs: OsUser | undefined): Promise<[T, string]> {
  const [info, dir] = await Promise.allSettled([read(), makeBackupDir(backupsDir, id, runAs)])
  if (info.status === 'rejected') {
    if (dir.status === 'fulfilled') await fsp.rm(dir.value, { recursive: true, force: true })
    throw info.reason
  }
  if (dir.status === 'rejected') throw dir.reason
  return [info.value, dir.value]
}
