/**
 * SQL for databases and roles. Identifiers arrive already quoted (client.escapeIdentifier)
 * and names were validated as plain lowercase identifiers before that.
 */
export const databaseOwner = (): string =>
  'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1'

export const roleExists = (): string => 'SELECT 1 FROM pg_roles WHERE rolname = $1'

/** The password is a SCRAM verifier literal, never the plaintext. */
export const createRole = (role: string, verifierLiteral: string): string =>
  `CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${verifierLiteral}`

export const dropRole = (role: string): string => `DROP ROLE ${role}`

export const createDatabase = (db: string, owner: string): string => `CREATE DATABASE ${db} OWNER ${owner}`

export const revokePublicConnect = (db: string): string => `REVOKE CONNECT, TEMPORARY ON DATABASE ${db} FROM PUBLIC`

export const dropDatabase = (db: string, force: boolean): string => `DROP DATABASE ${db}${force ? ' WITH (FORCE)' : ''}`

export const listDatabases = (): string => `
SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, pg_database_size(d.oid)::text AS size,
       (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid)::int AS connections
  FROM pg_database d
 WHERE NOT d.datistemplate
 ORDER BY d.datname`

export const sessions = (): string =>
  'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()'

export const ownedDatabases = (): string =>
  'SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)'
