import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { fsyncDir, writeFileAtomic } from '../platform/fs.js'
import type { StateLayout } from '../platform/paths.js'
import type { SecretStore } from './secret-store.js'
import { VAULT_BAD_KEY, VAULT_KEY_MISSING, VAULT_MISSING, VAULT_TAMPERED, VAULT_WRONG_KEY } from './errors.js'
import { withFileLock } from './lock.js'
import { assertStoreName } from './names.js'
import { redactor } from './redact.js'

/**
 * The encrypted vault file, used when no OS keychain is usable: `<state>/secrets.vault`.
 *
 * Format (JSON, one object):
 *   { format: "magflock-vault", version: 1, keyId, nonce, tag, data }
 * `data` is AES-256-GCM over the whole JSON map { secrets: { NAME: { value, updatedAt } } },
 * with a fresh random 12-byte nonce on every write and the header (format, version, keyId)
 * as additional authenticated data, so a changed header fails authentication too.
 *
 * Why the whole map and not per entry: one nonce per write instead of one per entry, the
 * names and the number of secrets stay hidden, and the file is always one consistent
 * version (read-modify-write under the lock, atomic rename). Vaults hold tens of secrets,
 * so re-encrypting all of them per write costs microseconds.
 *
 * `keyId` is the first 16 bytes of SHA-256("magflock-vault-key\0" || key): a wrong key is
 * recognised before decrypting (E_VAULT_WRONG_KEY, vault untouched) and told apart from a
 * damaged file (E_VAULT_TAMPERED). It reveals nothing useful about a 256-bit random key.
 *
 * The key comes from MAGFLOCK_MASTER_KEY (64 hex digits or base64 of 32 bytes) or from
 * `<state>/master.key` (base64, 0600), created on first use only when no vault exists yet:
 * a fresh key could never read an existing vault.
 *
 * Once a vault has been written, `<state>/secrets.json` records it ({store: "file"}). A vault
 * that is missing while that marker exists is E_VAULT_MISSING on every read and write: an
 * empty vault silently put in its place would lose the superuser password and everything else.
 */
export const VAULT_FORMAT = 'magflock-vault'
export const VAULT_VERSION = 1

interface VaultFile {
  format: string
  version: number
  keyId: string
  nonce: string
  tag: string
  data: string
}

interface Entry {
  value: string
  updatedAt: string
}
type SecretMap = Record<string, Entry>

interface MasterKey {
  key: Buffer
  keyId: string
  source: string
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('magflock-vault-key\0').update(key).digest('hex').slice(0, 32)
}

/** Parses MAGFLOCK_MASTER_KEY / key file text: 64 hex digits or base64(url) of 32 bytes. */
export function parseMasterKey(text: string, source: string): Buffer {
  const s = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, 'hex')
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) {
    const b = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (b.length === 32) return b
    throw VAULT_BAD_KEY({ source, reason: `it decodes to ${b.length} bytes, not 32` })
  }
  throw VAULT_BAD_KEY({ source, reason: 'it is neither 64 hex digits nor base64' })
}

export class FileVault implements SecretStore {
  private master: MasterKey | undefined
  readonly file: string
  readonly lockFile: string
  readonly markerFile: string

  constructor(
    private readonly layout: StateLayout,
    private readonly environ: NodeJS.ProcessEnv = process.env,
  ) {
    this.file = layout.secretsVault
    this.lockFile = `${layout.secretsVault}.lock`
    this.markerFile = path.join(layout.root, 'secrets.json')
  }

  /** Where the key comes from, for `doctor` (no I/O beyond an existence check). */
  keySource(): string {
    return this.environ.MAGFLOCK_MASTER_KEY ? 'MAGFLOCK_MASTER_KEY' : this.layout.masterKey
  }

  async get(name: string): Promise<string | undefined> {
    const map = await this.read()
    return Object.hasOwn(map, name) ? map[name]!.value : undefined
  }

  async set(name: string, value: string): Promise<void> {
    assertStoreName(name)
    if (typeof value !== 'string') throw new TypeError('secret value must be a string')
    redactor.add(value)
    await this.mutate((m) => {
      m[name] = { value, updatedAt: new Date().toISOString() }
    })
  }

  async delete(name: string): Promise<boolean> {
    let existed = false
    await this.mutate((m) => {
      existed = Object.hasOwn(m, name)
      delete m[name]
      return existed
    })
    return existed
  }

  async list(): Promise<string[]> {
    return Object.keys(await this.read()).sort()
  }

  /** Names with their last update time (no values). */
  async entries(): Promise<Array<{ name: string; updatedAt: string }>> {
    const m = await this.read()
    return Object.keys(m)
      .sort()
      .map((name) => ({ name, updatedAt: m[name]!.updatedAt }))
  }

  /** Read-modify-write under the lock. `fn` returning false skips the write. */
  async mutate(fn: (m: SecretMap) => boolean | void): Promise<void> {
    await fsp.mkdir(this.layout.root, { recursive: true, mode: 0o700 })
    await withFileLock(this.lockFile, async () => {
      const m = await this.read()
      if (fn(m) === false) return
      await this.write(m)
    })
  }

  private async read(): Promise<SecretMap> {
    let text: string
    try {
      text = await fsp.readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      if ((await readStoreMarker(this.markerFile)) === 'file') throw VAULT_MISSING({ vault: this.file, marker: this.markerFile })
      return Object.create(null) as SecretMap
    }
    let f: VaultFile
    try {
      f = JSON.parse(text) as VaultFile
    } catch {
      throw VAULT_TAMPERED({ vault: this.file, reason: 'not a vault file' })
    }
    if (!f || typeof f !== 'object' || f.format !== VAULT_FORMAT || typeof f.keyId !== 'string' || typeof f.data !== 'string') {
      throw VAULT_TAMPERED({ vault: this.file, reason: 'header missing or malformed' })
    }
    if (f.version !== VAULT_VERSION) throw VAULT_TAMPERED({ vault: this.file, reason: `unknown version ${String(f.version)}` })
    const mk = await this.key()
    if (f.keyId !== mk.keyId) throw VAULT_WRONG_KEY({ vault: this.file, source: mk.source })
    let plain: Buffer
    try {
      const nonce = Buffer.from(f.nonce, 'base64')
      const tag = Buffer.from(f.tag, 'base64')
      if (nonce.length !== 12 || tag.length !== 16) throw new Error('bad nonce or tag length')
      const d = createDecipheriv('aes-256-gcm', mk.key, nonce)
      d.setAAD(aad(f.keyId))
      d.setAuthTag(tag)
      plain = Buffer.concat([d.update(Buffer.from(f.data, 'base64')), d.final()])
    } catch {
      throw VAULT_TAMPERED({ vault: this.file, reason: 'authentication failed' })
    }
    let parsed: { secrets?: SecretMap }
    try {
      parsed = JSON.parse(plain.toString('utf8')) as { secrets?: SecretMap }
    } catch {
      throw VAULT_TAMPERED({ vault: this.file, reason: 'content unreadable after decryption' })
    }
    const out = Object.create(null) as SecretMap
    for (const [k, v] of Object.entries(parsed.secrets ?? {})) {
      if (v && typeof v.value === 'string') {
        out[k] = { value: v.value, updatedAt: String(v.updatedAt ?? '') }
        redactor.add(v.value)
      }
    }
    return out
  }

  private async write(m: SecretMap): Promise<void> {
    const mk = await this.key()
    const nonce = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', mk.key, nonce)
    c.setAAD(aad(mk.keyId))
    const data = Buffer.concat([c.update(JSON.stringify({ secrets: m }), 'utf8'), c.final()])
    const f: VaultFile = {
      format: VAULT_FORMAT,
      version: VAULT_VERSION,
      keyId: mk.keyId,
      nonce: nonce.toString('base64'),
      tag: c.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    }
    await writeFileAtomic(this.file, JSON.stringify(f) + '\n', { mode: 0o600 })
    if ((await readStoreMarker(this.markerFile)) !== 'file') await writeStoreMarker(this.markerFile, 'file')
  }

  private async key(): Promise<MasterKey> {
    if (this.master) return this.master
    const fromEnv = this.environ.MAGFLOCK_MASTER_KEY
    let key: Buffer
    let source: string
    if (fromEnv) {
      key = parseMasterKey(fromEnv, 'MAGFLOCK_MASTER_KEY')
      source = 'MAGFLOCK_MASTER_KEY'
    } else {
      key = await this.keyFromFile()
      source = this.layout.masterKey
    }
    this.master = { key, keyId: keyIdOf(key), source }
    return this.master
  }

  private async keyFromFile(): Promise<Buffer> {
    const file = this.layout.masterKey
    try {
      return await readKeyFile(file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (await fsp.stat(this.file).then(() => true, () => false)) throw VAULT_KEY_MISSING({ vault: this.file, keyFile: file })
    // Create-if-absent without a race: write a temp file, then link() it into place, which
    // fails if another process created the key first; then everyone reads the winner's key.
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
    const fh = await fsp.open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(randomBytes(32).toString('base64') + '\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
    try {
      await fsp.link(tmp, file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    } finally {
      await fsp.rm(tmp, { force: true })
    }
    await fsyncDir(path.dirname(file))
    return readKeyFile(file)
  }
}

async function readKeyFile(file: string): Promise<Buffer> {
  const st = await fsp.stat(file)
  if ((st.mode & 0o077) !== 0) {
    throw VAULT_BAD_KEY({ source: file, reason: `its mode is ${(st.mode & 0o777).toString(8)}; it must be readable by its owner only (chmod 600)` })
  }
  return parseMasterKey(await fsp.readFile(file, 'utf8'), file)
}

function aad(keyId: string): Buffer {
  return Buffer.from(`${VAULT_FORMAT}:${VAULT_VERSION}:${keyId}`)
}

/** `<state>/secrets.json`: which store this flock's secrets live in, once it has any. */
export async function readStoreMarker(file: string): Promise<'file' | 'keychain' | undefined> {
  try {
    const j = JSON.parse(await fsp.readFile(file, 'utf8')) as { store?: unknown }
    return j.store === 'keychain' || j.store === 'file' ? j.store : undefined
  } catch {
    return undefined
  }
}

export async function writeStoreMarker(file: string, store: 'file' | 'keychain', extra: Record<string, unknown> = {}): Promise<void> {
  await writeFileAtomic(file, JSON.stringify({ store, ...extra }, null, 2) + '\n', { mode: 0o600 })
}
