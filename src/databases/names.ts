import { DB_NAME_INVALID } from './errors.js'

/**
 * Database and role names MagFlock creates are plain lowercase identifiers, so they never
 * need quoting in a URL, a shell or psql, and mean the same to every tool. (They are still
 * quoted in SQL.)
 */
const IDENT = /^[a-z_][a-z0-9_]*$/

export function validateName(name: string, what: 'database' | 'role'): string {
  const bad = (reason: string) => DB_NAME_INVALID({ name, what, reason })
  if (name.length === 0) throw bad('it is empty')
  if (Buffer.byteLength(name) > 63) throw bad('it is longer than 63 bytes, and Postgres would silently truncate it')
  if (!IDENT.test(name)) {
    if (/[A-Z]/.test(name)) throw bad('it has uppercase letters')
    if (/^[0-9]/.test(name)) throw bad('it starts with a digit')
    throw bad('only lowercase letters, digits and "_" are allowed')
  }
  if (name.startsWith('pg_')) throw bad('names starting with "pg_" are reserved by Postgres')
  if (what === 'database' && (name === 'template0' || name === 'template1')) throw bad('it is a template database')
  return name
}

/** Vault secret holding the password of the owner role MagFlock created for a database. */
export function ownerSecretName(database: string): string {
  return `db.${database}.owner.password`
}
