/**
 * The SQL the migration guard rails run, as text, in one place.
 *
 * postgres-migrations takes its session advisory lock on this key. MagFlock takes the SAME
 * key first, with a deadline; advisory locks are re-entrant within a session, so the
 * library's own `pg_try_advisory_lock` then succeeds at once on our dedicated connection,
 * and a plain postgres-migrations process elsewhere still excludes us (and we it).
 */
export const LIBRARY_LOCK_KEY = -8525285245963000605n

/** pg_locks shows a bigint advisory key as classid = high 32 bits, objid = low 32 bits, objsubid = 1. */
export function lockKeyParts(key: bigint = LIBRARY_LOCK_KEY): { classid: string; objid: string } {
  const u = BigInt.asUintN(64, key)
  return { classid: String(u >> 32n), objid: String(u & 0xffffffffn) }
}

export const tryLock = (): string => `SELECT pg_try_advisory_lock(${LIBRARY_LOCK_KEY}::bigint) AS ok`
export const unlock = (): string => `SELECT pg_advisory_unlock(${LIBRARY_LOCK_KEY}::bigint) AS ok`

/** Sessions holding the migration lock in the current database. $1 classid, $2 objid. */
export const lockHolders = (): string => `
SELECT a.pid, a.application_name, a.usename::text AS usename, a.backend_start::text AS backend_start,
       a.state, a.xact_start::text AS xact_start
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.classid = $1::oid AND l.objid = $2::oid
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND a.pid <> pg_backend_pid()`

/** Every relation named "migrations", and whether unqualified `migrations` resolves to it. */
export const migrationsTables = (): string => `
SELECT n.nspname AS schema, c.relkind::text AS relkind,
       (c.oid = to_regclass('migrations')::oid) AS resolved,
       ARRAY(SELECT attname::text FROM pg_attribute
              WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum) AS columns
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'migrations'
 ORDER BY n.nspname`

export const appliedRows = (): string =>
  'SELECT id, name, hash, executed_at::text AS executed_at FROM migrations ORDER BY id'

export const invalidIndexes = (): string => `
SELECT format('%I.%I', n.nspname, c.relname) AS name
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT i.indisvalid
 ORDER BY 1`
