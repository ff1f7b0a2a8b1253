import { z } from 'zod'
import { ADMIN_ONLY, ALL_ROLES, OPERATORS, ROLES, defineRoute } from './route.js'
import { statusMeta } from './core-meta.js'

/** Foundation routes: status, shutdown, tokens, audit, metrics, events, logs. */

export const ComponentStatus = z.object({
  name: z.string(),
  state: z.enum(['pending', 'starting', 'running', 'restarting', 'stopping', 'stopped', 'failed']),
  restarts: z.number(),
  healthy: z.boolean(),
  detail: z.string().optional(),
  lastError: z.string().optional(),
})

export const InstanceStatus = z.object({
  name: z.string(),
  /** 'standalone': a restored copy the kernel supervises; never part of failover. */
  role: z.enum(['primary', 'replica', 'fenced', 'standalone']),
  state: z.enum(['running', 'starting', 'stopped', 'crashed', 'restarting', 'failed', 'unknown']),
  pid: z.number().nullable(),
  port: z.number(),
  host: z.string(),
  dataDir: z.string(),
  user: z.string(),
  database: z.string(),
  /** Connection URL without the password (see `magflock db url --reveal`). */
  url: z.string(),
  adopted: z.boolean(),
  restarts: z.number(),
  /** Replicas only, as the primary last reported them (null when not streaming or unknown). */
  replication: z
    .object({ state: z.string(), syncState: z.string(), lagBytes: z.number(), lagSeconds: z.number(), observedAt: z.string() })
    .nullable()
    .optional(),
})

export const StatusOutput = z.object({
  kernel: z.object({
    pid: z.number(),
    version: z.string(),
    startedAt: z.string(),
    uptimeSeconds: z.number(),
    stateDir: z.string(),
    socket: z.string(),
    env: z.string(),
    metricsUrl: z.string().nullable(),
  }),
  components: z.array(ComponentStatus),
  instances: z.array(InstanceStatus),
  /**
   * libpq multi-host URL (no password) that always reaches the current primary:
   * every live instance, primary first, target_session_attrs=read-write. Clients keep it
   * across failovers.
   */
  primaryUrl: z.string().nullable(),
})
export type StatusOutput = z.infer<typeof StatusOutput>

export const status = defineRoute({
  ...statusMeta,
  input: z.object({}),
  output: StatusOutput,
})

export const shutdown = defineRoute({
  id: 'shutdown',
  method: 'POST',
  path: '/v1/shutdown',
  roles: OPERATORS,
  mutating: true,
  input: z.object({ keepPostgres: z.boolean().default(false) }),
  output: z.object({ stopping: z.boolean() }),
})

/** `magflock instance remove`: takes away a standalone (restored) instance. */
export const instanceRemove = defineRoute({
  id: 'instance.remove',
  method: 'POST',
  path: '/v1/instances/remove',
  roles: OPERATORS,
  mutating: true,
  input: z.object({ name: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/), keepData: z.boolean().default(false) }),
  output: z.object({ name: z.string(), dataDir: z.string(), dataKept: z.boolean() }),
})

export const TokenInfo = z.object({
  id: z.string(),
  name: z.string(),
  // 'extension': a scoped token of an extension (docs/extensions.md), with its grants.
  role: z.enum([...ROLES, 'extension']),
  createdAt: z.string(),
  extension: z.string().optional(),
  grants: z.array(z.string()).optional(),
})

export const tokenCreate = defineRoute({
  id: 'token.create',
  method: 'POST',
  path: '/v1/tokens',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({ role: z.enum(ROLES), name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/) }),
  // The secret is returned exactly once, here; only its hash is stored.
  output: TokenInfo.extend({ token: z.string() }),
})

export const tokenList = defineRoute({
  id: 'token.list',
  method: 'GET',
  path: '/v1/tokens',
  roles: ADMIN_ONLY,
  mutating: false,
  input: z.object({}),
  output: z.object({ tokens: z.array(TokenInfo) }),
})

export const tokenRevoke = defineRoute({
  id: 'token.revoke',
  method: 'POST',
  path: '/v1/tokens/revoke',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({ id: z.string().min(1) }),
  output: z.object({ revoked: z.string() }),
})

export const auditVerify = defineRoute({
  id: 'audit.verify',
  method: 'GET',
  path: '/v1/audit/verify',
  roles: ['admin', 'operator', 'viewer'],
  mutating: false,
  input: z.object({}),
  output: z.object({
    ok: z.boolean(),
    records: z.number(),
    headHash: z.string().nullable(),
    problems: z.array(z.object({ line: z.number(), problem: z.string() })),
  }),
})

export const metrics = defineRoute({
  id: 'metrics',
  method: 'GET',
  path: '/v1/metrics',
  roles: ALL_ROLES,
  mutating: false,
  input: z.object({}),
  output: z.object({ contentType: z.string(), text: z.string() }),
})

export const logs = defineRoute({
  id: 'logs',
  method: 'GET',
  path: '/v1/logs',
  roles: ['admin', 'operator'],
  mutating: false,
  input: z.object({ lines: z.coerce.number().int().min(1).max(10_000).default(100) }),
  output: z.object({ lines: z.array(z.string()) }),
})
