import * as api from '../../api/pooler.js'
import { handle, type DaemonRoute } from '../services.js'

/** Pooler routes: read the running pooler (live.pooler) and PgBouncer's admin console. */
export const poolerRoutes: DaemonRoute[] = [
  handle(api.poolerStatus, async (_in, _ctx, k) => {
    const cfg = k.config().pooler
    const p = k.live.pooler
    const base = { enabled: cfg.enabled, host: cfg.host, port: cfg.port, poolMode: cfg.poolMode, defaultPoolSize: cfg.defaultPoolSize, maxClientConn: cfg.maxClientConn }
    if (!p) return { ...base, running: false, pid: null, primary: null, paused: false, lastRepoint: null, readOnly: null, pools: [], stats: [], totals: { clientsActive: 0, clientsWaiting: 0, serverConnections: 0 } }
    const s = p.status()
    const { pools, stats } = await p.observe()
    const sum = (f: (x: (typeof pools)[number]) => number) => pools.reduce((a, x) => a + f(x), 0)
    return {
      ...base,
      running: true,
      pid: s.pid,
      primary: s.primary,
      paused: s.paused,
      lastRepoint: s.lastRepoint,
      readOnly: s.readOnly ? { serving: s.readOnly.serving, excluded: s.readOnly.excluded, via: s.readOnly.route.kind, ...(s.readOnly.note ? { note: s.readOnly.note } : {}) } : null,
      pools,
      stats,
      totals: { clientsActive: sum((x) => x.clientsActive), clientsWaiting: sum((x) => x.clientsWaiting), serverConnections: sum((x) => x.serversActive + x.serversIdle + x.serversUsed) },
    }
  }),
]
