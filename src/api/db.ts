import { z } from 'zod'
import { defineRoute } from './route.js'

/**
 * Databases of the flock: `magflock db create|list|url|drop|psql`.
 * Names are validated by src/databases/names.ts (E_DB_NAME_INVALID), not by the schema,
 * so the operator gets the reason rather than a schema message.
 */
const name = z.string().min(1).max(200)

export const DbCreateResult = z.object({
  name: z.string(),
  owner: z.string(),
  created: z.boolean(),
  roleCreated: z.boolean(),
  passwordSecret: z.string().nullable(),
})
export type DbCreateResult = z.infer<typeof DbCreateResult>

export const dbCreate = defineRoute({
  id: 'db.create',
  method: 'POST',
  path: '/v1/db/create',
  roles: ['admin', 'operator'],
  mutating: true,
  input: z.object({ name, owner: name.optional(), ifNotExists: z.boolean().default(false) }),
  output: DbCreateResult,
})

export const DatabaseInfo = z.object({
  name: z.string(),
  owner: z.string(),
  sizeBytes: z.number(),
  connections: z.number(),
  managed: z.boolean(),
})

export const dbList = defineRoute({
  id: 'db.list',
  method: 'GET',
  path: '/v1/db',
  roles: ['admin', 'operator', 'viewer', 'ci'],
  mutating: false,
  input: z.object({}),
  output: z.object({ databases: z.array(DatabaseInfo) }),
})

export const DbUrlResult = z.object({
  name: z.string(),
  owner: z.string(),
  host: z.string(),
  port: z.number(),
  url: z.string(),
  revealed: z.boolean(),
  /** The role the URL logs in as: the owner, or (admin tokens, when the vault has no owner password) the superuser. */
  user: z.string().optional(),
  password: z.string().optional(),
})
export type DbUrlResult = z.infer<typeof DbUrlResult>

export const dbUrl = defineRoute({
  id: 'db.url',
  method: 'POST',
  path: '/v1/db/url',
  roles: ['admin', 'operator', 'viewer', 'ci'],
  // Audited: with `reveal` it hands out a credential (viewers may not reveal).
  mutating: true,
  input: z.object({
    name,
    reveal: z.boolean().default(false),
    purpose: z.enum(['url', 'psql']).default('url'),
    /** A libpq multi-host URL over every live instance that finds the primary (or any) after a failover. */
    role: z.enum(['primary', 'any']).optional(),
    /** Through the managed PgBouncer (pooler.host:pooler.port), which follows the primary. */
    pooled: z.boolean().optional(),
    /** With `pooled`: `<name>.ro`, the read-only pool over the streaming replicas. */
    readOnly: z.boolean().optional(),
  }),
  output: DbUrlResult,
})

export const DbDropResult = z.object({
  name: z.string(),
  dropped: z.boolean(),
  owner: z.string(),
  roleDropped: z.boolean(),
  secretDeleted: z.boolean(),
})
export type DbDropResult = z.infer<typeof DbDropResult>

export const dbDrop = defineRoute({
  id: 'db.drop',
  method: 'POST',
  path: '/v1/db/drop',
  roles: ['admin', 'operator'],
  mutating: true,
  input: z.object({ name, disconnect: z.boolean().default(false), keepRole: z.boolean().default(false) }),
  output: DbDropResult,
})
