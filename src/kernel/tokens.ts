import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { promises as fsp, statSync } from 'node:fs'
import { z } from 'zod'
import { ROLES } from '../api/route.js'
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../platform/fs.js'
import { TOKEN_NOT_FOUND, TOKEN_STORE_MISMATCH } from './errors.js'
import type { PrincipalRole } from './grants.js'

/**
 * API bearer tokens. The secret (`mf_` + 32 random bytes, base64url) is shown exactly once,
 * when it is created; the store (tokens.json, 0600, replaced atomically) keeps only its
 * sha256. Verification hashes the presented token and compares it with every stored hash in
 * constant time, so neither a match's position nor a near-miss leaks through timing.
 *
 * The file is cached and re-read when it changes on disk (inode, size or mtime), so a token
 * revoked by another process stops working on the next request. A corrupt file is
 * E_CORRUPT_STATE: silently resetting it would hand out a fresh admin token.
 */
export interface TokenInfo {
  id: string
  name: string
  role: PrincipalRole
  createdAt: string
  /** Extension tokens only (role `extension`): the extension and its granted capabilities. */
  extension?: string
  grants?: string[]
}

export interface CreatedToken extends TokenInfo {
  token: string
}

const StoredToken = z.object({
  id: z.string().min(1),
  name: z.string(),
  role: z.enum([...ROLES, 'extension']),
  createdAt: z.string(),
  extension: z.string().optional(),
  grants: z.array(z.string()).optional(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
})
type StoredToken = z.infer<typeof StoredToken>

const TokenFile = z.object({ version: z.literal(1), tokens: z.array(StoredToken) })
type TokenFile = z.infer<typeof TokenFile>

export const TOKEN_PREFIX = 'mf_'

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

interface Cached {
  stamp: string
  data: TokenFile
}

export class TokenStore {
  readonly file: string
  private cache: Cached | undefined
  private queue: Promise<unknown> = Promise.resolve()

  constructor(file: string) {
    this.file = file
  }

  async create(input: { role: PrincipalRole; name: string; extension?: string; grants?: string[] }): Promise<CreatedToken> {
    return this.mutate((data) => {
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
      let id = randomBytes(4).toString('hex')
      while (data.tokens.some((t) => t.id === id)) id = randomBytes(4).toString('hex')
      const info: TokenInfo = { id, name: input.name, role: input.role, createdAt: new Date().toISOString() }
      if (input.extension !== undefined) info.extension = input.extension
      if (input.grants !== undefined) info.grants = [...input.grants]
      data.tokens.push({ ...info, hash: hashToken(token) })
      return { ...info, token }
    })
  }

  /** The token's info when it is known; undefined otherwise (never throws for a bad token). */
  async verify(token: string): Promise<TokenInfo | undefined> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 512) return undefined
    const data = await this.load()
    const presented = Buffer.from(hashToken(token), 'hex')
    let found: StoredToken | undefined
    // Compare against every entry, without an early exit.
    for (const t of data.tokens) {
      const match = timingSafeEqual(Buffer.from(t.hash, 'hex'), presented)
      if (match && found === undefined) found = t
    }
    return found === undefined ? undefined : publicInfo(found)
  }

  async list(): Promise<TokenInfo[]> {
    const data = await this.load()
    return data.tokens.map(publicInfo)
  }

  async revoke(id: string): Promise<void> {
    await this.mutate((data) => {
      const i = data.tokens.findIndex((t) => t.id === id)
      if (i < 0) throw TOKEN_NOT_FOUND({ id })
      data.tokens.splice(i, 1)
    })
  }

  /**
   * Makes sure `tokenFile` holds a working admin token (the CLI on this host reads it).
   * Absent → create one and write it 0600. Present and known as an admin token → keep it.
   * Present but unknown → E_TOKEN_STORE_MISMATCH: the store was replaced or reset, and
   * quietly registering the file's token again would resurrect a revoked credential.
   */
  async ensureAdmin(tokenFile: string): Promise<{ created: boolean }> {
    let existing: string | undefined
    try {
      existing = (await fsp.readFile(tokenFile, 'utf8')).trim()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (existing !== undefined) {
      const info = await this.verify(existing)
      if (info === undefined || info.role !== 'admin') throw TOKEN_STORE_MISMATCH({ tokenFile, store: this.file })
      await fsp.chmod(tokenFile, 0o600)
      return { created: false }
    }
    // Store first, then the file: a crash in between leaves an unused stored hash, never a
    // token file the store does not know.
    const created = await this.create({ role: 'admin', name: 'admin' })
    await writeFileAtomic(tokenFile, created.token + '\n', { mode: 0o600 })
    return { created: true }
  }

  private async load(): Promise<TokenFile> {
    const stamp = await this.stamp()
    if (stamp === undefined) {
      this.cache = undefined
      return { version: 1, tokens: [] }
    }
    if (this.cache !== undefined && this.cache.stamp === stamp) return this.cache.data
    const data = (await readJsonFile(this.file, (v) => TokenFile.parse(v))) ?? { version: 1 as const, tokens: [] }
    this.cache = { stamp, data }
    return data
  }

  /**
   * Identity of the file's current content. A synchronous stat on purpose: it runs on every
   * request, costs a few microseconds, and the async one queues behind the libuv threadpool
   * (pg, fs, crypto) — ten times slower under load.
   */
  private async stamp(): Promise<string | undefined> {
    const st = statSync(this.file, { bigint: true, throwIfNoEntry: false })
    return st === undefined ? undefined : `${st.ino}:${st.size}:${st.mtimeNs}`
  }

  /** Read-modify-write, serialized within this process; the file is replaced atomically. */
  private mutate<T>(fn: (data: TokenFile) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const current = await this.load()
      const data: TokenFile = { version: 1, tokens: current.tokens.map((t) => ({ ...t })) }
      const result = fn(data)
      await writeJsonAtomic(this.file, data, 0o600)
      const stamp = await this.stamp()
      this.cache = stamp === undefined ? undefined : { stamp, data }
      return result
    }
    const p = this.queue.then(run, run)
    this.queue = p.catch(() => undefined)
    return p
  }
}

function publicInfo(t: StoredToken): TokenInfo {
  const info: TokenInfo = { id: t.id, name: t.name, role: t.role, createdAt: t.createdAt }
  if (t.extension !== undefined) info.extension = t.extension
  if (t.grants !== undefined) info.grants = [...t.grants]
  return info
}
