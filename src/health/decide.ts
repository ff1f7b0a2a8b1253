/**
 * Patroni-compatible health answers for load balancers (docs/multi-host.md, "Health endpoints
 * and HAProxy"): a pure function from what was observed about one instance to an HTTP status,
 * table-tested. Semantics follow Patroni's REST API, so HAProxy/keepalived checks written for
 * Patroni work unchanged (one port per member, as one Patroni per member):
 *
 *   / /primary /read-write /master /leader   200 only on the primary that holds the flock's
 *                                            primary role and runs read-write
 *   /replica                                 200 on a running standby that is a flock replica
 *                                            (?lag=N[kB|MB|GB]: and replays within N bytes)
 *   /read-only                               /primary or /replica
 *   /health                                  200 while Postgres accepts connections
 *   /liveness                                200 while the kernel's loop answers (this does)
 *   /readiness                               primary, or a replica whose WAL receiver streams
 */
export interface Observed {
  /** The role the flock registry gives the instance (the leader lock's equivalent). */
  role: 'primary' | 'replica' | 'fenced' | 'standalone'
  running: boolean
  inRecovery: boolean | null
  /** pg_stat_wal_receiver.status = 'streaming'. */
  streaming: boolean
  /** Bytes the instance's replay is behind the primary's current WAL position; null unknown. */
  lagBytes: number | null
}

export const HEALTH_PATHS = ['/', '/primary', '/master', '/leader', '/read-write', '/replica', '/read-only', '/health', '/liveness', '/readiness'] as const

/** "16kB", "64MB", "1GB", "1048576" → bytes; undefined when not a size. */
export function parseLag(v: string): number | undefined {
  const m = v.trim().match(/^(\d+)\s*(B|kB|KB|MB|GB|TB)?$/)
  if (!m?.[1]) return undefined
  const mult: Record<string, number> = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }
  return Number(m[1]) * (mult[m[2] ?? 'B'] ?? 1)
}

export function healthStatus(path: string, o: Observed, query: URLSearchParams = new URLSearchParams()): 200 | 503 | 404 {
  const isPrimary = o.running && o.role === 'primary' && o.inRecovery === false
  const maxLag = query.has('lag') ? parseLag(query.get('lag') ?? '') : undefined
  const lagOk = maxLag === undefined || (o.lagBytes !== null && o.lagBytes <= maxLag)
  const isReplica = o.running && o.role === 'replica' && o.inRecovery === true && lagOk
  const ok = (b: boolean) => (b ? 200 : 503)
  switch (path) {
    case '/':
    case '/primary':
    case '/master':
    case '/leader':
    case '/read-write':
      return ok(isPrimary)
    case '/replica':
      return ok(isReplica)
    case '/read-only':
      return ok(isPrimary || isReplica)
    case '/health':
      return ok(o.running)
    case '/liveness':
      return 200
    case '/readiness':
      return ok(isPrimary || (o.running && o.role === 'replica' && o.streaming && lagOk))
    default:
      return 404
  }
}

/**
 * The addresses a health port listens on: health.host, and on a node of a multi-host flock
 * also the node's --listen address (unless health.host is already it or a wildcard).
 */
export function healthHosts(host: string, nodeListen: string | undefined): string[] {
  if (!nodeListen || host === '0.0.0.0' || host === '::' || host === nodeListen) return [host]
  return [host, nodeListen]
}
