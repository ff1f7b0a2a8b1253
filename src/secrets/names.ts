import { SECRET_BAD_NAME } from './errors.js'

/** The bootstrap superuser's password (moved here from the foundation's superuser.password). */
export const SUPERUSER_SECRET = 'postgres.superuser.password'

/** Secret names for other database roles' passwords: postgres.roles.<role>.password. */
export function roleSecretName(role: string): string {
  return `postgres.roles.${role}.password`
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
/** `@` cannot appear in user-chosen names, so internal names never collide with them. */
const INTERNAL = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}@[a-z]+$/

export function isValidSecretName(name: string): boolean {
  return NAME.test(name)
}

export function assertSecretName(name: string): void {
  if (!NAME.test(name)) throw SECRET_BAD_NAME({ name })
}

/** Names the store accepts: user names plus internal ones like `x@pending`. */
export function assertStoreName(name: string): void {
  if (!NAME.test(name) && !INTERNAL.test(name)) throw SECRET_BAD_NAME({ name })
}

/** Where `rotate` stages a new value before the database accepts it. */
export function pendingName(name: string): string {
  return `${name}@pending`
}

export function isInternalName(name: string): boolean {
  return name.includes('@')
}

/**
 * The database role whose password a secret holds, or undefined for a plain secret.
 * Rotating a role password must go through the kernel (ALTER ROLE + vault as one step).
 */
export function roleForSecret(name: string, superuserRole = 'postgres'): string | undefined {
  if (name === SUPERUSER_SECRET) return superuserRole
  const m = /^postgres\.roles\.([A-Za-z_][A-Za-z0-9_$-]{0,62})\.password$/.exec(name)
  return m?.[1]
}

/**
 * True for secrets that hold a database role's password: the superuser, postgres.roles.<role>.password
 * and the database owners' db.<name>.owner.password. Rotating them must run ALTER ROLE in the
 * kernel; the kernel handler maps the name to its role.
 */
export function isRolePasswordSecret(name: string): boolean {
  return roleForSecret(name) !== undefined || /^db\.[^.@]+\.owner\.password$/.test(name)
}
