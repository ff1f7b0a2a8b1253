import { realtimeStatus, realtimeToken } from '../../api/realtime.js'
import { issueToken } from '../../realtime/token.js'
import { handle, type DaemonRoute } from '../services.js'

export const realtimeRoutes: DaemonRoute[] = [
  handle(realtimeStatus, async (_in, _ctx, k) => {
    const cfg = k.config().realtime
    const r = k.live.realtime
    if (!r) {
      return {
        enabled: cfg.enabled,
        url: null,
        database: cfg.database,
        clients: 0,
        channels: 0,
        postgresSubscriptions: 0,
        presences: 0,
        backlog: 0,
        droppedSlowConsumers: 0,
        protocolErrors: 0,
        commitToSend: { p50Ms: null, p99Ms: null, samples: 0 },
        writer: null,
        stream: null,
      }
    }
    const h = r.hub()
    return {
      enabled: true,
      url: r.url,
      database: r.database,
      ...h,
      backlog: r.backlog(),
      droppedSlowConsumers: r.droppedSlow(),
      protocolErrors: r.protocolErrors(),
      commitToSend: r.commitToSend(),
      writer: r.writer(),
      stream: r.stream(),
    }
  }),

  handle(realtimeToken, async (input, ctx, k) => {
    const r = await issueToken(k.secrets, { role: input.role, claims: input.claims, expiresInSeconds: input.expiresInSeconds })
    ctx.auditDetails.role = r.role
    ctx.auditDetails.claimKeys = r.claimKeys
    ctx.auditDetails.expiresAt = r.expiresAt
    return r
  }),
]
