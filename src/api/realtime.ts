import { z } from 'zod'
import { ALL_ROLES, OPERATORS, defineRoute } from './route.js'

/** Realtime (MagWS): status of the WebSocket server and change stream; token issue. */
export const RealtimeStatus = z.object({
  enabled: z.boolean(),
  url: z.string().nullable(),
  database: z.string(),
  clients: z.number().int(),
  channels: z.number().int(),
  postgresSubscriptions: z.number().int(),
  presences: z.number().int(),
  backlog: z.number().int(),
  droppedSlowConsumers: z.number().int(),
  protocolErrors: z.number().int(),
  commitToSend: z.object({ p50Ms: z.number().nullable(), p99Ms: z.number().nullable(), samples: z.number().int() }),
  /**
   * How frames reach the sockets: the native writer or Node, and whether the flush yields the
   * CPU between its slices (realtime.yieldCpu; null: realtime not running).
   */
  writer: z.object({ native: z.boolean(), detail: z.string(), yieldsCpu: z.boolean() }).nullable(),
  stream: z
    .object({
      connected: z.boolean(),
      primary: z.string().nullable(),
      slot: z.string(),
      publication: z.string(),
      retainedBytes: z.number().nullable(),
      lastLsn: z.string().nullable(),
      lastCommitAt: z.string().nullable(),
      restarts: z.number().int(),
      slotRecreations: z.number().int(),
      detail: z.string(),
    })
    .nullable(),
})
export type RealtimeStatus = z.infer<typeof RealtimeStatus>

export const realtimeStatus = defineRoute({
  id: 'realtime.status',
  method: 'GET',
  path: '/v1/realtime',
  roles: ALL_ROLES,
  mutating: false,
  input: z.object({}),
  output: RealtimeStatus,
})

export const RealtimeTokenInput = z.object({
  role: z.string().min(1).max(63),
  claims: z.record(z.string(), z.unknown()).optional(),
  /** Seconds until `exp`: 1 minute to 1 year. */
  expiresInSeconds: z.number().int().min(60).max(31_536_000).default(3600),
})

export const RealtimeTokenResult = z.object({
  token: z.string(),
  role: z.string(),
  expiresAt: z.string(),
  claimKeys: z.array(z.string()),
})
export type RealtimeTokenResult = z.infer<typeof RealtimeTokenResult>

export const realtimeToken = defineRoute({
  id: 'realtime.token',
  method: 'POST',
  path: '/v1/realtime/token',
  roles: OPERATORS,
  // Mutating: every issue is in the audit log (role, claim names, expiry; never the token).
  mutating: true,
  input: RealtimeTokenInput,
  output: RealtimeTokenResult,
})
