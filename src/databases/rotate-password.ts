import { scramVerifier } from '../postgres/sql.js'
import pg from 'pg'
import type { SecretStore } from '../kernel/services.js'
import { ROTATE_FAILED, ROTATE_INCOMPLETE, SECRET_NOT_FOUND } from '../secrets/errors.js'
import { generateSecret } from '../secrets/generate.js'
import { pendingName } from '../secrets/names.js'
import { redactor } from '../secrets/redact.js'

/**
 * Rotates a database role's password and its vault entry as one operation. The order makes
 * every failure leave a working password in the vault:
 *
 *   0. finish an earlier rotation that died half-way (a `NAME@pending` entry);
 *   1. stage the new value as NAME@pending (durable before the database changes);
 *   2. ALTER ROLE … PASSWORD in a transaction, commit;
 *   3. promote: NAME := new value, delete NAME@pending.
 *
 * Fails at 1 or 2 → pending dropped, nothing changed (E_ROTATE_FAILED).
 * Fails at 3 → the role is set back to the old password over the same, still authenticated
 * session (which is what makes rotating the superuser's own password safe), pending dropped
 * (E_ROTATE_FAILED). If even that fails, the new password stays as NAME@pending and step 0
 * of the next rotation finds which one works (E_ROTATE_INCOMPLETE).
 *
 * The password reaches Postgres only as a SCRAM-SHA-256 verifier computed here, so the
 * plain value never appears in the server's statement log or pg_stat_activity.
 */
export interface RotateOptions {
  /** Connection used for ALTER ROLE; when rotating the superuser it carries the OLD password. */
  connection: pg.ClientConfig
  role: string
  secretName: string
  store: SecretStore
  generate?: () => string
  /** Test hook: runs after ALTER ROLE committed, before the vault is updated. */
  faultAfterAlter?: () => void
  /** Test hook: replaces the vault write of step 3. */
  promote?: (name: string, value: string) => Promise<void>
}

export async function rotateRolePassword(opts: RotateOptions): Promise<{ role: string; rotatedAt: string }> {
  const { role, secretName, store } = opts
  const pending = pendingName(secretName)
  await finishPendingRotation(opts)

  const old = await store.get(secretName)
  if (old === undefined) throw SECRET_NOT_FOUND({ name: secretName })
  const next = (opts.generate ?? (() => generateSecret()))()
  redactor.add(next)
  const fail = (step: string, err: unknown) => ROTATE_FAILED({ name: secretName, role, step, reason: reasonOf(err) }, { cause: err })

  try {
    await store.set(pending, next)
  } catch (err) {
    throw fail('staging the new password in the vault', err)
  }

  const client = new pg.Client(opts.connection)
  client.on('error', () => undefined) // a dropped connection surfaces on the next query
  try {
    try {
      await client.connect()
    } catch (err) {
      await store.delete(pending).catch(() => undefined)
      throw fail('connecting to Postgres', err)
    }
    try {
      await client.query('BEGIN')
      await client.query(alterRoleSql(client, role, next))
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      await store.delete(pending).catch(() => undefined)
      throw fail('ALTER ROLE', err)
    }
    try {
      opts.faultAfterAlter?.()
      await (opts.promote ?? ((n, v) => store.set(n, v)))(secretName, next)
    } catch (err) {
      try {
        await client.query(alterRoleSql(client, role, old))
      } catch (rollbackErr) {
        throw ROTATE_INCOMPLETE({ name: secretName, role, reason: `${reasonOf(err)}; rollback: ${reasonOf(rollbackErr)}` }, { cause: err })
      }
      await store.delete(pending).catch(() => undefined)
      throw fail('recording the new password in the vault (the role was set back)', err)
    }
    // A leftover pending equal to the current value is harmless; step 0 clears it.
    await store.delete(pending).catch(() => undefined)
  } finally {
    await client.end().catch(() => undefined)
  }
  return { role, rotatedAt: new Date().toISOString() }
}

/**
 * Step 0: a NAME@pending entry means a rotation died between staging and promotion. If the
 * role accepts the pending password, the ALTER happened: promote it. Otherwise drop it.
 */
export async function finishPendingRotation(opts: Pick<RotateOptions, 'connection' | 'role' | 'secretName' | 'store'>): Promise<'none' | 'promoted' | 'dropped'> {
  const pending = pendingName(opts.secretName)
  const value = await opts.store.get(pending)
  if (value === undefined) return 'none'
  const current = await opts.store.get(opts.secretName)
  if (current === value) {
    await opts.store.delete(pending)
    return 'promoted'
  }
  if (await canLogin({ ...opts.connection, user: opts.role, password: value })) {
    await opts.store.set(opts.secretName, value)
    await opts.store.delete(pending)
    return 'promoted'
  }
  await opts.store.delete(pending)
  return 'dropped'
}

/** Whether these credentials log in right now (used to confirm a rotation, and by its tests). */
export async function canLogin(cfg: pg.ClientConfig): Promise<boolean> {
  const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 5000 })
  c.on('error', () => undefined)
  try {
    await c.connect()
    await c.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await c.end().catch(() => undefined)
  }
}

function alterRoleSql(client: pg.Client, role: string, password: string): string {
  // A verifier, so the plaintext never reaches the server (Postgres hashes non-ASCII input
  // after SASLprep itself, so for those the literal is sent).
  return `ALTER ROLE ${client.escapeIdentifier(role)} PASSWORD ${client.escapeLiteral(scramVerifier(password) ?? password)}`
}

function reasonOf(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return redactor.scrub(msg.split('\n')[0] ?? msg)
}
