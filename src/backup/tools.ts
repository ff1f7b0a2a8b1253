import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import type { ProgressEvent } from '../api/route.js'
import type { OsUser } from '../platform/os-user.js'
import { redact, spawnLong } from '../platform/process.js'
import { BACKUP_TOOL_FAILED } from './errors.js'
import { decryptFrames, encryptFrames, ENCRYPTED_SUFFIX } from './crypto.js'

export type Progress = Omit<ProgressEvent, 'type'>
export type OnProgress = (p: Progress) => void

/** libpq settings for a Postgres tool; the password travels in the environment, never argv. */
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
  const h = createHash('sha256')
  let size = 0
  const tap = async function* (frames: AsyncIterable<Buffer>) {
    for await (const f of frames) {
      h.update(f)
      size += f.length
      yield f
    }
  }
  const ws = createWriteStream(out, { mode: 0o600 })
  await pipeline(src, encryptFrames(key), tap, ws)
  await fsp.rm(file)
  return { path: out, size, sha256: h.digest('hex') }
}

/** Decrypts `file.mfenc` into `dest` (throws CryptoFailure on any tampering). */
export async function decryptFile(file: string, dest: string, key: Buffer): Promise<void> {
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), decryptFrames(key), createWriteStream(dest, { mode: 0o600 }))
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
