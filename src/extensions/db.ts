import pg from 'pg'
import type { KernelServices } from '../kernel/services.js'
import { generatePassword, scramVerifier } from '../databases/scram.js'
import { DB_NOT_FOUND } from '../databases/errors.js'

/**
 * `db:connect:<database>:ro|rw` (docs/extensions.md): one dedicated login role per extension,
 * `ext_<name>` (dashes become underscores), never a superuser, with no CREATEDB, CREATEROLE,
 * REPLICATION or BYPASSRLS. Its password is generated at each connect request (the previous
 * one stops working) and travels only in the broker's answer to the extension; only its SCRAM
 * verifier reaches the server. Rights are granted per database: CONNECT, USAGE on the
 * non-system schemas, SELECT (ro) or SELECT/INSERT/UPDATE/DELETE and sequence use (rw) on the
 * tables there, also on tables the owner creates later (default privileges).
 */
export const dbRoleOf = (name: string) => `ext_${name.replace(/-/g, '_')}`

const SCHEMAS = `SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog','information_schema','pg_toast') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'`

async function withClient<T>(cfg: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 10_000 })
  c.on('error', () => undefined)
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => undefined)
  }
}

export async function connectUrl(k: KernelServices, ext: string, database: string, mode: 'ro' | 'rw'): Promise<{ url: string; role: string; host: string; port: number }> {
  const primary = k.instances.primary()
  const role = dbRoleOf(ext)
  const password = generatePassword()
  const owner = await withClient(await primary.connection(), async (c) => {
    const r = await c.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1 AND NOT datistemplate', [database])
    if (!r.rows[0]) throw DB_NOT_FOUND({ name: database })
    const q = c.escapeIdentifier(role)
    const verifier = c.escapeLiteral(scramVerifier(password))
    const exists = (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount
    await c.query(
      `${exists ? 'ALTER' : 'CREATE'} ROLE ${q} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT CONNECTION LIMIT 10 PASSWORD ${verifier}`,
    )
    await c.query(`GRANT CONNECT ON DATABASE ${c.escapeIdentifier(database)} TO ${q}`)
    return r.rows[0].owner
  })
  await withClient(await primary.connection(database), async (c) => {
    const q = c.escapeIdentifier(role)
    const o = c.escapeIdentifier(owner)
    const tablePrivs = mode === 'rw' ? 'SELECT, INSERT, UPDATE, DELETE' : 'SELECT'
    for (const { nspname } of (await c.query<{ nspname: string }>(SCHEMAS)).rows) {
      const s = c.escapeIdentifier(nspname)
      await c.query(`GRANT USAGE ON SCHEMA ${s} TO ${q}`)
      if (mode === 'ro') await c.query(`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA ${s} FROM ${q}`)
      await c.query(`GRANT ${tablePrivs} ON ALL TABLES IN SCHEMA ${s} TO ${q}`)
      if (mode === 'rw') await c.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${q}`)
      await c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${o} IN SCHEMA ${s} GRANT ${tablePrivs} ON TABLES TO ${q}`)
    }
  })
  const url = `postgresql://${role}:${password}@${primary.host}:${primary.port}/${encodeURIComponent(database)}`
  return { url, role, host: primary.host, port: primary.port }
}

/** Takes back what connectUrl gave on `database`, and ends the role's sessions there. */
export async function revokeDatabase(k: KernelServices, ext: string, database: string): Promise<void> {
  const primary = k.instances.primary()
  const role = dbRoleOf(ext)
  await withClient(await primary.connection(), async (c) => {
    if (!(await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount) return
    if (!(await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount) return
    await withClient(await primary.connection(database), async (d) => {
      // DROP OWNED revokes every privilege the role holds in this database (and its default privileges).
      await d.query(`DROP OWNED BY ${d.escapeIdentifier(role)}`)
    })
    await c.query(`REVOKE ALL ON DATABASE ${c.escapeIdentifier(database)} FROM ${c.escapeIdentifier(role)}`)
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND datname = $2', [role, database])
  })
}

/** Drops the role (after revokeDatabase on every database it had). */
export async function dropRole(k: KernelServices, ext: string, databases: string[]): Promise<void> {
  for (const db of databases) await revokeDatabase(k, ext, db).catch(() => undefined)
  const role = dbRoleOf(ext)
  await withClient(await k.instances.primary().connection(), async (c) => {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role])
    await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(role)}`)
  })
}
