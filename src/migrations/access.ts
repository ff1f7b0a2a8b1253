import path from 'node:path'
import type pg from 'pg'
import type { Role } from '../api/route.js'
import { ownerCredentials, type DatabaseDeps } from '../databases/service.js'
import { lookupUser } from '../platform/os-user.js'
import {
  MIGRATE_DIR_FORBIDDEN,
  MIGRATE_OWNER_UNKNOWN,
  MIGRATE_PLATFORM_DB,
  MIGRATE_PRIVILEGED_ROLE,
  MIGRATION_JS_FORBIDDEN,
} from './errors.js'
import { childJsEvaluator } from './js-child.js'
import type { MigrationDirRegistry } from './registry.js'
import type { JsPolicy } from './runner.js'

/**
 * Who may do what with migrations through the kernel (issue 10; the table is in
 * docs/operations.md, "Access control"):
 *
 *  - only roles that may run code (admin) name a folder, run .js migrations or migrate as the
 *    database superuser; every other role gets the folder configured for the database and the
 *    owner's own login, or a refusal;
 *  - the platform databases (postgres, template0/1, postgres.database) are admin-only;
 *  - .js files run in a child as `nobody` (src/migrations/js-child.ts), never in the kernel,
 *    and never for status or a dry run.
 */
export const CODE_ROLES: readonly Role[] = ['admin']

export function mayRunCode(role: Role): boolean {
  return CODE_ROLES.includes(role)
}

export function platformDatabases(configured: string): Set<string> {
  return new Set(['postgres', 'template0', 'template1', configured])
}

export function assertMayTarget(database: string, role: Role, platform: Set<string>): void {
  if (platform.has(database) && !mayRunCode(role)) throw MIGRATE_PLATFORM_DB({ database, role })
}

export interface DirResolution {
  dir: string
  source: 'request' | 'registered' | 'config'
}

/**
 * The folder a kernel run reads: the one in the request (admin only), else the one an admin
 * registered for the database, else `migrations.dir` of the kernel's config, relative to the
 * project the kernel runs for.
 */
export async function resolveMigrationsDir(o: {
  database: string
  role: Role
  requested: string | undefined
  registry: MigrationDirRegistry
  projectDir: string
  configured: string
}): Promise<DirResolution> {
  if (o.requested !== undefined) {
    if (!mayRunCode(o.role)) throw MIGRATE_DIR_FORBIDDEN({ role: o.role })
    return { dir: path.resolve(o.requested), source: 'request' }
  }
  const reg = await o.registry.get(o.database)
  if (reg) return { dir: reg.dir, source: 'registered' }
  return { dir: path.resolve(o.projectDir, o.configured), source: 'config' }
}

/**
 * The connection a kernel migration uses: the owner's login from the vault. Admin tokens fall
 * back to the superuser (a database MagFlock did not make); other roles get
 * E_MIGRATE_OWNER_UNKNOWN instead.
 */
export async function migrationConnection(deps: DatabaseDeps, database: string, role: Role): Promise<pg.ClientConfig> {
  const { owner, config } = await ownerCredentials(deps, database)
  if (config) return config
  if (!mayRunCode(role)) throw MIGRATE_OWNER_UNKNOWN({ database, owner, role })
  return deps.superuser(database)
}

/**
 * Run on the migration's own connection before anything is applied: for a role that may not
 * run code, the login must not be a superuser, able to create roles (and so grant itself
 * pg_execute_server_program), or a member of the server program/file roles.
 */
export function privilegeCheck(database: string, role: Role): ((client: pg.Client) => Promise<void>) | undefined {
  if (mayRunCode(role)) return undefined
  return async (client) => {
    const r = await client.query<{ user: string; super: boolean; createrole: boolean; program: boolean; files: boolean }>(
      `SELECT current_user AS user, r.rolsuper AS super, r.rolcreaterole AS createrole,
              pg_has_role(current_user, 'pg_execute_server_program', 'USAGE') AS program,
              pg_has_role(current_user, 'pg_write_server_files', 'USAGE') OR pg_has_role(current_user, 'pg_read_server_files', 'USAGE') AS files
         FROM pg_roles r WHERE r.rolname = current_user`,
    )
    const row = r.rows[0]
    const why = !row
      ? 'could not be looked up'
      : row.super
        ? 'is a superuser'
        : row.createrole
          ? 'may create roles (and so grant itself pg_execute_server_program)'
          : row.program
            ? 'is a member of pg_execute_server_program'
            : row.files
              ? 'may read or write server files'
              : undefined
    if (why) throw MIGRATE_PRIVILEGED_ROLE({ database, user: row?.user ?? 'unknown', why })
  }
}

/** .js migrations: admin runs them in a `nobody` child (a root kernel only); others are refused. */
export function jsPolicyFor(role: Role): JsPolicy {
  if (!mayRunCode(role)) {
    return { refuse: (f) => MIGRATION_JS_FORBIDDEN({ file: f.fileName, reason: `a ${role} token may not run code, and a .js migration is code` }) }
  }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return {
      refuse: (f) =>
        MIGRATION_JS_FORBIDDEN({ file: f.fileName, reason: 'the kernel does not run as root, so it cannot run the file as another, unprivileged OS user' }),
    }
  }
  return { evaluate: childJsEvaluator({ runAs: lookupUser('nobody') }) }
}
