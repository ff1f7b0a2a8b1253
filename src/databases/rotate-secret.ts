import pg from 'pg'
import type { KernelServices } from '../kernel/services.js'
import { ROTATE_FAILED, SECRET_NOT_FOUND } from '../secrets/errors.js'
import { generateSecret } from '../secrets/generate.js'
import { assertSecretName, roleForSecret } from '../secrets/names.js'
import { rotateRolePassword } from './rotate-password.js'
import { writeSuperuserPgpass } from '../postgres/pgpass.js'

/**
 * What the kernel's `secrets.rotate` handler calls: maps the secret name to its role and
 * rotates role and vault together (see rotate.ts), over a superuser connection whose
 * password the instance registry resolves from the vault at call time — the OLD password
 * when the superuser itself is rotated.
 *
 *   postgres.superuser.password     → config postgres.superuser
 *   postgres.roles.<role>.password  → <role>
 *   db.<name>.owner.password        → the owner of database <name> (from pg_database)
 *   anything else                   → a plain secret: a new generated value
 */
export async function rotateSecretInKernel(
  k: Pick<KernelServices, 'secrets' | 'instances' | 'config'> & { layout?: KernelServices['layout'] },
  name: string,
): Promise<{ name: string; role?: string; rotatedAt: string }> {
  assertSecretName(name)
  const cfg = k.config()
  let role = roleForSecret(name, cfg.postgres.superuser)
  const db = /^db\.([^.@]+)\.owner\.password$/.exec(name)?.[1]
  if (!role && !db) {
    if ((await k.secrets.get(name)) === undefined) throw SECRET_NOT_FOUND({ name })
    await k.secrets.set(name, generateSecret())
    return { name, rotatedAt: new Date().toISOString() }
  }
  const connection = await k.instances.primary().connection(cfg.postgres.database)
  if (!role && db) role = await databaseOwner(connection, db, name)
  const r = await rotateRolePassword({ connection, role: role!, secretName: name, store: k.secrets })
  if (role === cfg.postgres.superuser && k.layout) {
    const password = await k.secrets.get(name)
    if (password) await writeSuperuserPgpass(k.layout.pgpass, { hosts: ['127.0.0.1', 'localhost'], user: role, password })
  }
  return { name, role: r.role, rotatedAt: r.rotatedAt }
}

async function databaseOwner(connection: pg.ClientConfig, db: string, name: string): Promise<string> {
  const c = new pg.Client(connection)
  c.on('error', () => undefined)
  try {
    await c.connect()
    const r = await c.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [db])
    const owner = r.rows[0]?.owner
    if (!owner) throw ROTATE_FAILED({ name, role: '?', step: 'finding the database owner', reason: `database "${db}" does not exist` })
    return owner
  } finally {
    await c.end().catch(() => undefined)
  }
}
