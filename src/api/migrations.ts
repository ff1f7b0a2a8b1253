import { z } from 'zod'
import { defineRoute } from './route.js'

/**
 * `magflock db migrate` and `db migrate status` for a database of the flock. The kernel reads
 * the folder configured for the database: the one an admin registered, else `migrations.dir`
 * of its own config (relative to its project). Only an admin token may name a folder (`dir`,
 * absolute) or register it for later runs; other roles get E_MIGRATE_DIR_FORBIDDEN. The role
 * rules (no .js, no superuser, no platform database for non-admin tokens) are in
 * src/migrations/access.ts.
 */
const absoluteDir = z.string().min(1).max(4096).refine((d) => d.startsWith('/'), 'dir must be an absolute path')
export const MigrationRef = z.object({ id: z.number(), name: z.string(), file: z.string(), transactional: z.boolean() })

export const MigrateResult = z.object({
  database: z.string(),
  dir: z.string(),
  /** Where the folder came from: the request (admin), an admin's registration, or config. */
  dirSource: z.enum(['request', 'registered', 'config']).optional(),
  dryRun: z.boolean(),
  applied: z.array(MigrationRef.extend({ durationMs: z.number() })),
  pending: z.array(MigrationRef),
  alreadyApplied: z.number(),
  durationMs: z.number(),
})
export type MigrateResult = z.infer<typeof MigrateResult>

export const migrate = defineRoute({
  id: 'db.migrate',
  method: 'POST',
  path: '/v1/db/migrate',
  roles: ['admin', 'operator', 'ci'],
  mutating: true,
  streaming: true,
  input: z.object({
    database: z.string().min(1).max(200),
    /** Admin tokens only. */
    dir: absoluteDir.optional(),
    /** Admin tokens only, with `dir`: remember it as this database's folder for every later run. */
    register: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    lockTimeoutSeconds: z.number().int().min(1).max(3600).optional(),
  }),
  output: MigrateResult,
})

export const DriftItem = z.object({
  kind: z.enum(['edited', 'missing', 'gap', 'duplicate', 'invalid-name', 'out-of-order']),
  id: z.number().optional(),
  file: z.string().optional(),
  detail: z.string(),
  cause: z.enum(['line-endings', 'renamed', 'renamed-and-edited', 'content']).optional(),
  recordedHash: z.string().optional(),
  currentHash: z.string().optional(),
})

export const MigrateStatusResult = z.object({
  database: z.string(),
  dir: z.string(),
  dirSource: z.enum(['request', 'registered', 'config']).optional(),
  applied: z.array(
    z.object({ id: z.number(), name: z.string(), hash: z.string(), appliedAt: z.string().nullable(), file: z.string().nullable() }),
  ),
  pending: z.array(MigrationRef),
  drift: z.array(DriftItem),
  ok: z.boolean(),
})
export type MigrateStatusResult = z.infer<typeof MigrateStatusResult>

export const migrateStatus = defineRoute({
  id: 'db.migrate.status',
  method: 'GET',
  path: '/v1/db/migrate/status',
  roles: ['admin', 'operator', 'viewer', 'ci'],
  mutating: false,
  /** `dir`: admin tokens only (status never runs a .js file, but a folder's names are still a disclosure). */
  input: z.object({ database: z.string().min(1).max(200), dir: absoluteDir.optional() }),
  output: MigrateStatusResult,
})
