import { z } from 'zod'
import { defineRoute } from './route.js'

/**
 * `magflock db migrate` and `db migrate status` for a database of the flock. The kernel
 * reads the migrations folder itself (`dir`, an absolute path on this machine: the API is a
 * local socket), so .js migrations work the same as in-process `--db-url` runs.
 */
export const MigrationRef = z.object({ id: z.number(), name: z.string(), file: z.string(), transactional: z.boolean() })

export const MigrateResult = z.object({
  database: z.string(),
  dir: z.string(),
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
    dir: z.string().min(1).refine((d) => d.startsWith('/'), 'dir must be an absolute path'),
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
  input: z.object({ database: z.string().min(1).max(200), dir: z.string().min(1) }),
  output: MigrateStatusResult,
})
