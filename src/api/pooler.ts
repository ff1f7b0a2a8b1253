import { z } from 'zod'
import { ALL_ROLES, defineRoute } from './route.js'

/**
 * The managed PgBouncer (docs/pooling.md): `magflock pooler status`. Pools and counters come
 * from PgBouncer's admin console (SHOW POOLS, SHOW STATS) at call time.
 */
export const PoolerPool = z.object({
  database: z.string(),
  user: z.string(),
  clientsActive: z.number(),
  clientsWaiting: z.number(),
  serversActive: z.number(),
  serversIdle: z.number(),
  serversUsed: z.number(),
  maxWaitSeconds: z.number(),
  poolMode: z.string(),
})

export const PoolerStats = z.object({
  database: z.string(),
  totalXactCount: z.number(),
  totalQueryCount: z.number(),
  totalReceived: z.number(),
  totalSent: z.number(),
  totalXactTimeUs: z.number(),
  totalQueryTimeUs: z.number(),
  totalWaitTimeUs: z.number(),
  avgXactTimeUs: z.number(),
  avgQueryTimeUs: z.number(),
})

export const PoolerStatusResult = z.object({
  enabled: z.boolean(),
  /** False when enabled but PgBouncer is down (the kernel is restarting it). */
  running: z.boolean(),
  pid: z.number().nullable(),
  host: z.string(),
  port: z.number(),
  poolMode: z.string(),
  defaultPoolSize: z.number(),
  maxClientConn: z.number(),
  /** The instance every pool points at. */
  primary: z.object({ name: z.string(), host: z.string(), port: z.number() }).nullable(),
  paused: z.boolean(),
  lastRepoint: z.object({ from: z.string(), to: z.string(), at: z.string(), planned: z.boolean() }).nullable(),
  /** The read-only pool (`<database>.ro`); null when pooler.readOnly.enabled is false or the pooler is down. */
  readOnly: z
    .object({
      /** Replicas new read-only server connections go to, round robin. Empty: the primary serves, read-only. */
      serving: z.array(z.string()),
      excluded: z.array(z.object({ name: z.string(), reason: z.string() })),
      via: z.enum(['sockets', 'tcp', 'primary']),
      note: z.string().optional(),
    })
    .nullable(),
  pools: z.array(PoolerPool),
  stats: z.array(PoolerStats),
  totals: z.object({ clientsActive: z.number(), clientsWaiting: z.number(), serverConnections: z.number() }),
})
export type PoolerStatusResult = z.infer<typeof PoolerStatusResult>

export const poolerStatus = defineRoute({
  id: 'pooler.status',
  method: 'GET',
  path: '/v1/pooler',
  roles: ALL_ROLES,
  mutating: false,
  input: z.object({}),
  output: PoolerStatusResult,
})
