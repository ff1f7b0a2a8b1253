import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'

/**
 * Instance-level SQL as small functions returning `{ text, values }` (pg's QueryConfig), in
 * the pg-boss manner: all of it here, none inline in callers, each one tested against a real
 * Postgres. Values travel as bind parameters; only where Postgres cannot take a parameter
 * (identifiers, ALTER/CREATE ROLE … PASSWORD) do we quote, with quoteIdent / quoteLiteral.
 */
export interface Sql {
  text: string
  values: unknown[]
}

const sql = (text: string, values: unknown[] = []): Sql => ({ text, values })

/** Quotes an identifier ("my""table"); refuses NUL, which Postgres cannot store anyway. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0')) throw new Error('invalid SQL identifier')
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * Quotes a string literal the way libpq's PQescapeLiteral does: quotes doubled, and when a
 * backslash is present, the E'' form with backslashes doubled, so the result means the same
 * whatever standard_conforming_strings says.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('a SQL literal cannot contain NUL')
  const body = value.replace(/'/g, "''")
  return value.includes('\\') ? ` E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`
}

/**
 * Postgres' SCRAM-SHA-256 verifier for a password (RFC 5802/7677), so that a password is set
 * with `PASSWORD 'SCRAM-SHA-256$…'` and the plaintext never reaches the server, where
 * log_statement, pg_stat_activity or pg_stat_statements could keep it.
 * Postgres applies SASLprep to non-ASCII passwords; for those this returns undefined.
 */
export function scramVerifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): string | undefined {
  if (!/^[\x20-\x7e]*$/.test(password)) return undefined
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

function passwordClause(password: string): string {
  return `PASSWORD ${quoteLiteral(scramVerifier(password) ?? password)}`
}

export interface RoleOptions {
  login?: boolean
  superuser?: boolean
  createdb?: boolean
  createrole?: boolean
  replication?: boolean
  connectionLimit?: number
}

/** CREATE ROLE with a SCRAM verifier. The text holds a secret-derived value: never log it. */
export function createRole(name: string, password: string | undefined, o: RoleOptions = {}): Sql {
  const attrs = [
    o.login === false ? 'NOLOGIN' : 'LOGIN',
    o.superuser ? 'SUPERUSER' : 'NOSUPERUSER',
    o.createdb ? 'CREATEDB' : 'NOCREATEDB',
    o.createrole ? 'CREATEROLE' : 'NOCREATEROLE',
    o.replication ? 'REPLICATION' : 'NOREPLICATION',
  ]
  if (o.connectionLimit !== undefined) attrs.push(`CONNECTION LIMIT ${Math.trunc(o.connectionLimit)}`)
  if (password !== undefined) attrs.push(passwordClause(password))
  return sql(`CREATE ROLE ${quoteIdent(name)} ${attrs.join(' ')}`)
}

/** ALTER ROLE … PASSWORD (cannot take a bind parameter). The text is secret-derived: never log it. */
export function alterRolePassword(name: string, password: string): Sql {
  return sql(`ALTER ROLE ${quoteIdent(name)} ${passwordClause(password)}`)
}

export function dropRole(name: string, ifExists = true): Sql {
  return sql(`DROP ROLE ${ifExists ? 'IF EXISTS ' : ''}${quoteIdent(name)}`)
}

export function roleExists(name: string): Sql {
  return sql('SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists', [name])
}

/** One row: version, version_num, in_recovery, started_at, data_checksums, max_connections. */
export function serverInfo(): Sql {
  return sql(`SELECT version() AS version,
       current_setting('server_version_num')::int AS version_num,
       pg_is_in_recovery() AS in_recovery,
       pg_postmaster_start_time() AS started_at,
       current_setting('data_checksums') = 'on' AS data_checksums,
       current_setting('max_connections')::int AS max_connections`)
}

/** Per non-template database: size, connections, commits/rollbacks, cache hits, deadlocks, temp bytes. */
export function databaseStats(): Sql {
  return sql(`SELECT d.datname AS name,
       pg_database_size(d.oid)::bigint::text AS size_bytes,
       COALESCE(s.numbackends, 0)::int AS connections,
       COALESCE(s.xact_commit, 0)::bigint::text AS commits,
       COALESCE(s.xact_rollback, 0)::bigint::text AS rollbacks,
       COALESCE(s.blks_hit, 0)::bigint::text AS blocks_hit,
       COALESCE(s.blks_read, 0)::bigint::text AS blocks_read,
       COALESCE(s.deadlocks, 0)::bigint::text AS deadlocks,
       COALESCE(s.temp_bytes, 0)::bigint::text AS temp_bytes
  FROM pg_database d
  LEFT JOIN pg_stat_database s ON s.datid = d.oid
 WHERE NOT d.datistemplate
 ORDER BY d.datname`)
}

/** Client connections grouped by state ('active', 'idle', 'idle in transaction', …). */
export function connectionsByState(): Sql {
  return sql(`SELECT COALESCE(state, 'unknown') AS state, count(*)::int AS count
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1
 ORDER BY 1`)
}

/** Sessions on one database other than ours (for "who is still connected" refusals). */
export function otherSessions(database: string): Sql {
  return sql(
    `SELECT pid, usename AS user, application_name, client_addr::text AS client, state
  FROM pg_stat_activity
 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
 ORDER BY pid`,
    [database],
  )
}

/** Ends every other session on a database; returns one row per session with `terminated`. */
export function terminateSessions(database: string): Sql {
  return sql(
    `SELECT pid, pg_terminate_backend(pid) AS terminated
  FROM pg_stat_activity
 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
    [database],
  )
}
