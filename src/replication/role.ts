import type pg from 'pg'
import { REPLICATION_ROLE } from '../postgres/conf.js'
import { alterRolePassword, createRole, quoteIdent, roleExists, scramVerifier } from '../postgres/sql.js'
import { withClient } from './pg.js'

/**
 * The dedicated replication role. Standbys (primary_conninfo), clones (pg_basebackup) and
 * rejoins (pg_rewind) connect as it instead of the superuser, so no replica holds the
 * superuser password.
 *
 * Privileges, the minimum the PostgreSQL documentation names:
 *  - LOGIN REPLICATION, NOSUPERUSER: streaming replication and pg_basebackup;
 *  - EXECUTE on pg_ls_dir(text, boolean, boolean), pg_stat_file(text, boolean),
 *    pg_read_binary_file(text) and pg_read_binary_file(text, bigint, bigint, boolean): what
 *    pg_rewind calls on its source server ("pg_rewind" page, Notes), instead of a superuser.
 *    These functions read any file of the data directory, so the role is powerful; that is
 *    why its password lives only in the vault and in the 0600 passfiles of the standbys.
 */
export const REPLICATOR_ROLE = REPLICATION_ROLE

/** Vault name of its generated password (a plain secret: rotating it takes effect at the next ensureReplicator). */
export const REPLICATOR_SECRET = 'replication.replicator.password'

const REWIND_FUNCTIONS = [
  'pg_catalog.pg_ls_dir(text, boolean, boolean)',
  'pg_catalog.pg_stat_file(text, boolean)',
  'pg_catalog.pg_read_binary_file(text)',
  'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
]

/** Does a stored SCRAM verifier belong to `password`? (recomputed with its own salt and iterations) */
export function verifierMatches(stored: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored ?? '')
  if (!m) return false
  return scramVerifier(password, Number(m[1]), Buffer.from(m[2] as string, 'base64')) === stored
}

/**
 * Creates the role on the primary, or brings its attributes, grants and password back to what
 * they must be (idempotent; nothing is written when all is in place). One transaction with
 * synchronous_commit = local: a synchronous standby that is away must not hang it.
 * The statements carry a SCRAM verifier, never the password; they are never logged.
 */
export async function ensureReplicator(superuserCfg: pg.ClientConfig, password: string): Promise<{ changed: boolean }> {
  return withClient(superuserCfg, async (c) => {
    const exists = (await c.query<{ exists: boolean }>(roleExists(REPLICATOR_ROLE))).rows[0]?.exists === true
    const r = await c.query<{ pw: string | null; login: boolean; repl: boolean; su: boolean; grants: number }>(
      `select rolpassword as pw, rolcanlogin as login, rolreplication as repl, rolsuper as su,
              (select count(*)::int from unnest($2::regprocedure[]) f where has_function_privilege($1, f, 'execute')) as grants
         from pg_authid where rolname = $1`,
      [REPLICATOR_ROLE, REWIND_FUNCTIONS],
    ).catch(() => ({ rows: [] }))
    const row = r.rows[0]
    if (exists && row && row.login && row.repl && !row.su && row.grants === REWIND_FUNCTIONS.length && verifierMatches(row.pw, password)) return { changed: false }
    await c.query('begin')
    try {
      await c.query('set local synchronous_commit = local')
      if (!exists) await c.query(createRole(REPLICATOR_ROLE, password, { login: true, replication: true }))
      else {
        await c.query(`alter role ${quoteIdent(REPLICATOR_ROLE)} login replication nosuperuser`)
        await c.query(alterRolePassword(REPLICATOR_ROLE, password))
      }
      for (const f of REWIND_FUNCTIONS) await c.query(`grant execute on function ${f} to ${quoteIdent(REPLICATOR_ROLE)}`)
      await c.query('commit')
    } catch (err) {
      await c.query('rollback').catch(() => undefined)
      throw err
    }
    return { changed: true }
  })
}
