import pg from 'pg'
import type { SecretStore } from '../kernel/services.js'
import { describeHolder, migrationLockHolder } from '../migrations/lock.js'
import { DB_BUSY, DB_EXISTS, DB_IN_USE, DB_NOT_FOUND, DB_NO_CREDENTIALS, DB_PROTECTED } from './errors.js'
import { ownerSecretName, validateName } from './names.js'
import { generatePassword, scramVerifier } from './scram.js'
import * as sql from './sql.js'

/**
 * Databases of a flock and their owner roles. The kernel calls these with superuser
 * settings for the primary and its SecretStore; tests call them against a throwaway
 * Postgres. Every call opens a dedicated client and closes it.
 *
 * Each database gets an owner role (LOGIN, SCRAM password generated here and kept in the
 * vault as `db.<name>.owner.password`); CONNECT is revoked from PUBLIC, so only the owner
 * (and superusers) can connect.
 */
export interface DatabaseDeps {
  /** Superuser settings for a database of the primary (default: the maintenance database). */
  superuser(database?: string): Promise<pg.ClientConfig>
  secrets: SecretStore
  /** Where clients reach the primary (127.0.0.1 and its port). */
  host: string
  port: number
  /** Databases that `db drop` must refuse (postgres, the configured status database…). */
  protectedNames?: string[]
}

export interface CreateOptions {
  name: string
  owner?: string | undefined
  ifNotExists?: boolean | undefined
}

export interface CreateResult {
  name: string
  owner: string
  created: boolean
  roleCreated: boolean
  /** Vault secret with the owner's password, when MagFlock holds it. */
  passwordSecret: string | null
}

export interface DatabaseInfo {
  name: string
  owner: string
  sizeBytes: number
  connections: number
  /** MagFlock holds the owner's password. */
  managed: boolean
}

export interface UrlResult {
  name: string
  owner: string
  host: string
  port: number
  /** Without the password unless revealed. */
  url: string
  revealed: boolean
  /**
   * The role the URL logs in as: the owner, or the superuser when the vault holds no owner
   * password (a restored database, a role made outside MagFlock) and the caller may use it.
   */
  user?: string
  /** Only when revealed. */
  password?: string
}

export interface DropOptions {
  name: string
  /** Terminate open sessions instead of refusing. */
  disconnect?: boolean | undefined
  keepRole?: boolean | undefined
}

export interface DropResult {
  name: string
  dropped: boolean
  owner: string
  roleDropped: boolean
  secretDeleted: boolean
}

async function withClient<T>(cfg: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...cfg, application_name: 'magflock' })
  c.on('error', () => {})
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => {})
  }
}

const pgCode = (err: unknown): string | undefined => (err as { code?: string }).code

export async function createDatabase(deps: DatabaseDeps, opts: CreateOptions): Promise<CreateResult> {
  const name = validateName(opts.name, 'database')
  const owner = validateName(opts.owner ?? name, 'role')
  const secret = ownerSecretName(name)
  return withClient(await deps.superuser(), async (c) => {
    const existing = await c.query<{ owner: string }>(sql.databaseOwner(), [name])
    if (existing.rows[0]) {
      if (!opts.ifNotExists) throw DB_EXISTS({ name })
      const has = (await deps.secrets.get(secret)) !== undefined
      return { name, owner: existing.rows[0].owner, created: false, roleCreated: false, passwordSecret: has ? secret : null }
    }
    let roleCreated = false
    const roleExists = (await c.query(sql.roleExists(), [owner])).rowCount === 1
    if (!roleExists) {
      // Vault first: a crash after CREATE ROLE must not leave a role nobody knows the password of.
      const password = generatePassword()
      await deps.secrets.set(secret, password)
      try {
        await c.query(sql.createRole(c.escapeIdentifier(owner), c.escapeLiteral(scramVerifier(password))))
        roleCreated = true
      } catch (err) {
        await deps.secrets.delete(secret)
        if (pgCode(err) !== '42710') throw err // 42710: created concurrently; use it
      }
    }
    try {
      await c.query(sql.createDatabase(c.escapeIdentifier(name), c.escapeIdentifier(owner)))
    } catch (err) {
      if (roleCreated) {
        await c.query(sql.dropRole(c.escapeIdentifier(owner))).catch(() => {})
        await deps.secrets.delete(secret)
      }
      if (pgCode(err) === '42P04') {
        if (!opts.ifNotExists) throw DB_EXISTS({ name }, { cause: err })
        const o = await c.query<{ owner: string }>(sql.databaseOwner(), [name])
        return { name, owner: o.rows[0]?.owner ?? owner, created: false, roleCreated: false, passwordSecret: null }
      }
      throw err
    }
    await c.query(sql.revokePublicConnect(c.escapeIdentifier(name)))
    const has = roleCreated || (await deps.secrets.get(secret)) !== undefined
    return { name, owner, created: true, roleCreated, passwordSecret: has ? secret : null }
  })
}

export async function listDatabases(deps: DatabaseDeps): Promise<DatabaseInfo[]> {
  const rows = await withClient(await deps.superuser(), (c) =>
    c.query<{ name: string; owner: string; size: string; connections: number }>(sql.listDatabases()),
  )
  const out: DatabaseInfo[] = []
  for (const r of rows.rows) {
    out.push({
      name: r.name,
      owner: r.owner,
      sizeBytes: Number(r.size),
      connections: r.connections,
      managed: (await deps.secrets.get(ownerSecretName(r.name))) !== undefined,
    })
  }
  return out
}

async function ownerOf(deps: DatabaseDeps, name: string): Promise<string> {
  validateName(name, 'database')
  const r = await withClient(await deps.superuser(), (c) => c.query<{ owner: string }>(sql.databaseOwner(), [name]))
  const owner = r.rows[0]?.owner
  if (!owner) throw DB_NOT_FOUND({ name })
  return owner
}

export async function databaseUrl(
  deps: DatabaseDeps,
  opts: { name: string; reveal?: boolean | undefined; superuserFallback?: boolean | undefined },
): Promise<UrlResult> {
  const owner = await ownerOf(deps, opts.name)
  const base = { name: opts.name, owner, host: deps.host, port: deps.port }
  const tail = `@${deps.host}:${deps.port}/${opts.name}`
  if (!opts.reveal) return { ...base, url: `postgres://${encodeURIComponent(owner)}${tail}`, revealed: false, user: owner }
  const secret = ownerSecretName(opts.name)
  const password = await deps.secrets.get(secret)
  if (password === undefined) {
    // Every database the flock lists opens for an admin: one whose owner MagFlock did not
    // create (a restored copy owned by postgres, a dump's own roles) opens as the superuser.
    if (opts.superuserFallback) {
      const su = await deps.superuser(opts.name)
      const user = su.user ?? 'postgres'
      const suPassword = typeof su.password === 'string' ? su.password : ''
      return { ...base, url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(suPassword)}${tail}`, revealed: true, user, password: suPassword }
    }
    throw DB_NO_CREDENTIALS({ name: opts.name, secret, owner })
  }
  return { ...base, url: `postgres://${encodeURIComponent(owner)}:${encodeURIComponent(password)}${tail}`, revealed: true, user: owner, password }
}

/**
 * Settings for running migrations (or psql) as the database's owner, so the objects they
 * create belong to it; the superuser when the vault has no owner password.
 */
/**
 * The owner's login for a database, or `config: undefined` when the vault holds no password
 * for it (`postgres`, a database made with `--owner <existing role>` or not by MagFlock).
 */
export async function ownerCredentials(deps: DatabaseDeps, name: string): Promise<{ owner: string; config: pg.ClientConfig | undefined }> {
  const owner = await ownerOf(deps, name)
  const password = await deps.secrets.get(ownerSecretName(name))
  if (password === undefined) return { owner, config: undefined }
  return { owner, config: { ...(await deps.superuser(name)), user: owner, password, database: name } }
}

/**
 * The owner's login, else the superuser's. Admin (code-running) callers only: the kernel's
 * migrations for other roles use ownerCredentials and never fall back (src/migrations/access.ts).
 */
export async function ownerConnection(deps: DatabaseDeps, name: string): Promise<pg.ClientConfig> {
  const { config } = await ownerCredentials(deps, name)
  return config ?? (await deps.superuser(name))
}

export async function dropDatabase(deps: DatabaseDeps, opts: DropOptions): Promise<DropResult> {
  const name = validateName(opts.name, 'database')
  const protectedNames = new Set(['postgres', ...(deps.protectedNames ?? [])])
  if (protectedNames.has(name)) throw DB_PROTECTED({ name })
  const owner = await ownerOf(deps, name)
  // A migration run from anywhere (also `--db-url` outside the kernel) holds the advisory lock.
  const holder = await withClient(await deps.superuser(name), (c) => migrationLockHolder(c))
  if (holder) throw DB_BUSY({ name, holder: describeHolder(holder) })
  const secret = ownerSecretName(name)
  return withClient(await deps.superuser(), async (c) => {
    const sessions = (await c.query<{ n: number }>(sql.sessions(), [name])).rows[0]?.n ?? 0
    if (sessions > 0 && !opts.disconnect) throw DB_IN_USE({ name, sessions })
    try {
      await c.query(sql.dropDatabase(c.escapeIdentifier(name), !!opts.disconnect))
    } catch (err) {
      if (pgCode(err) === '55006') throw DB_IN_USE({ name, sessions: 1 }, { cause: err })
      if (pgCode(err) === '3D000') throw DB_NOT_FOUND({ name }, { cause: err })
      throw err
    }
    let roleDropped = false
    let secretDeleted = false
    const managed = (await deps.secrets.get(secret)) !== undefined
    if (managed && !opts.keepRole) {
      const ownsOther = (await c.query(sql.ownedDatabases(), [owner])).rowCount ?? 0
      if (ownsOther === 0) {
        try {
          await c.query(sql.dropRole(c.escapeIdentifier(owner)))
          roleDropped = true
        } catch (err) {
          if (pgCode(err) !== '2BP01' && pgCode(err) !== '42704') throw err // still owns objects elsewhere / gone
        }
      }
      if (roleDropped) secretDeleted = await deps.secrets.delete(secret)
    }
    return { name, dropped: true, owner, roleDropped, secretDeleted }
  })
}

/** Creates a database if missing; safe when several processes race (for `migrate --create-db`). */
export async function ensureDatabase(maintenance: pg.ClientConfig, name: string): Promise<{ created: boolean }> {
  validateName(name, 'database')
  return withClient(maintenance, async (c) => {
    if ((await c.query(sql.databaseOwner(), [name])).rowCount === 1) return { created: false }
    try {
      await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`)
      return { created: true }
    } catch (err) {
      // 42P04: another process created it first. 23505: the catalog's unique index saw the race.
      if (pgCode(err) === '42P04' || pgCode(err) === '23505') return { created: false }
      throw err
    }
  })
}

/** How `db psql` starts psql: the password goes to the process runner (which hands psql a 0600 passfile), never argv. */
export function psqlInvocation(
  psqlBin: string,
  conn: { host: string; port: number; user: string; password?: string | undefined; database: string },
  extraArgs: string[] = [],
): { bin: string; args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = { PGAPPNAME: 'magflock-psql', PGCONNECT_TIMEOUT: '10' }
  if (conn.password !== undefined) env.PGPASSWORD = conn.password
  return {
    bin: psqlBin,
    args: ['-h', conn.host, '-p', String(conn.port), '-U', conn.user, '-d', conn.database, ...extraArgs],
    env,
  }
}

/**
 * `db migrate --db-url URL --create-db`: creates the URL's database first, connecting to
 * the `postgres` maintenance database with the same credentials. (postgres-migrations'
 * own ensureDatabaseExists races; this does not.)
 */
export async function ensureDatabaseFromUrl(url: string): Promise<{ database: string; created: boolean }> {
  const u = new URL(url)
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''))
  const maintenance = new URL(url)
  maintenance.pathname = '/postgres'
  const res = await ensureDatabase({ connectionString: maintenance.toString() }, database)
  return { database, ...res }
}
