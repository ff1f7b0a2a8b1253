import { z } from 'zod'
import { ALL_ROLES, OPERATORS, defineRoute } from './route.js'

/**
 * Replication: `magflock replica add|list|remove|rejoin`, `magflock switchover`,
 * `magflock failover`. Topology changes stream NDJSON progress and hold the kernel's
 * `topology` lock, so two of them (or one and the failover monitor) never overlap.
 */
const NAME = z.string().regex(/^[a-z][a-z0-9_]{0,39}$/, 'lowercase letters, digits and _, starting with a letter')

export const Member = z.object({
  name: z.string(),
  role: z.enum(['primary', 'replica', 'fenced']),
  port: z.number(),
  host: z.string(),
  sync: z.boolean(),
  state: z.string(),
  syncState: z.string().nullable(),
  replayLsn: z.string().nullable(),
  lagBytes: z.number().nullable(),
  lagSeconds: z.number().nullable(),
  timeline: z.number().nullable(),
  fenced: z.boolean(),
})
export type Member = z.infer<typeof Member>

export const ReplicationStatus = z.object({
  members: z.array(Member),
  /** libpq multi-host URL that always reaches the writable primary (no password). */
  primaryUrl: z.string(),
  /** libpq multi-host URL over every live instance, for reads. */
  anyUrl: z.string(),
  monitor: z.object({ decision: z.string(), at: z.string() }).nullable(),
  failoversTotal: z.number(),
  lastFailover: z
    .object({ from: z.string(), to: z.string(), reason: z.string(), at: z.string(), durationMs: z.number(), automatic: z.boolean() })
    .nullable(),
})
export type ReplicationStatus = z.infer<typeof ReplicationStatus>

export const replicaList = defineRoute({
  id: 'replica.list',
  method: 'GET',
  path: '/v1/replication',
  roles: ALL_ROLES,
  mutating: false,
  input: z.object({}),
  output: ReplicationStatus,
})

export const replicaAdd = defineRoute({
  id: 'replica.add',
  method: 'POST',
  path: '/v1/replication/replicas/add',
  roles: OPERATORS,
  mutating: true,
  streaming: true,
  input: z.object({
    name: NAME.optional(),
    sync: z.boolean().default(false),
    /** Seed from a physical backup ('latest' or an id) plus the WAL archive instead of pg_basebackup. */
    fromBackup: z.string().regex(/^(latest|[A-Za-z0-9_-][A-Za-z0-9._-]{0,99})$/, "'latest' or a backup id (not starting with a dot)").optional(),
    /** A node of a multi-host flock: refused, a node's replica comes from `node join` on its host. */
    node: z.string().regex(/^[a-z][a-z0-9_]{0,39}$/, 'a node name (lowercase letters, digits, _)').optional(),
  }),
  output: Member.extend({
    /** Where the data came from: a fresh pg_basebackup of the primary, or a backup. */
    source: z.enum(['primary', 'backup']),
    backupId: z.string().nullable(),
    durationMs: z.number(),
  }),
})

export const replicaRemove = defineRoute({
  id: 'replica.remove',
  method: 'POST',
  path: '/v1/replication/replicas/remove',
  roles: OPERATORS,
  mutating: true,
  input: z.object({ name: NAME }),
  output: z.object({ name: z.string(), slotDropped: z.boolean() }),
})

export const replicaRejoin = defineRoute({
  id: 'replica.rejoin',
  method: 'POST',
  path: '/v1/replication/replicas/rejoin',
  roles: OPERATORS,
  mutating: true,
  streaming: true,
  input: z.object({ name: NAME, reclone: z.boolean().default(true) }),
  output: z.object({ name: z.string(), method: z.enum(['none', 'rewind', 'reclone']), durationMs: z.number() }),
})

export const switchover = defineRoute({
  id: 'switchover',
  method: 'POST',
  path: '/v1/replication/switchover',
  roles: OPERATORS,
  mutating: true,
  streaming: true,
  input: z.object({ to: NAME.optional() }),
  output: z.object({
    from: z.string(),
    to: z.string(),
    writeOutageMs: z.number(),
    durationMs: z.number(),
    timeline: z.number(),
    finalLsn: z.string(),
    repointed: z.array(z.string()),
    rejoin: z.enum(['none', 'rewind', 'reclone']),
    /** Milliseconds per phase; stopMs + catchupMs + fenceMs + promoteMs is the server-side write outage. */
    phases: z.object({
      checkpointMs: z.number(),
      stopMs: z.number(),
      catchupMs: z.number(),
      fenceMs: z.number(),
      promoteMs: z.number(),
      repointMs: z.number(),
      rejoinMs: z.number(),
      syncMs: z.number(),
    }),
  }),
})

export const failover = defineRoute({
  id: 'failover',
  method: 'POST',
  path: '/v1/replication/failover',
  roles: OPERATORS,
  mutating: true,
  streaming: true,
  input: z.object({ to: NAME.optional(), force: z.boolean().default(false) }),
  output: z.object({
    from: z.string(),
    to: z.string(),
    reason: z.string(),
    timeline: z.number(),
    durationMs: z.number(),
    repointed: z.array(z.string()),
    notRepointed: z.array(z.object({ name: z.string(), error: z.string() })),
  }),
})
