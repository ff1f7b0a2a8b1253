import { Counter, Gauge, type Registry } from 'prom-client'

/**
 * Postgres metrics, collected at scrape time from the flock's instances.
 *
 * On each scrape the collector asks `source()` for the instances, runs one snapshot query per
 * instance (instances in parallel, each bounded by timeoutMs) and publishes:
 *
 *   magflock_postgres_up{instance,role}                      1 reachable, 0 not
 *   magflock_postgres_in_recovery{instance}                  1 on a standby
 *   magflock_postgres_max_connections{instance}
 *   magflock_postgres_connections{instance,state}            client backends by state
 *   magflock_postgres_database_size_bytes{instance,datname}
 *   magflock_postgres_<stat>_total{instance,datname}         pg_stat_database counters
 *
 * pg_stat_database values are cumulative counters kept by Postgres, so they are exposed as
 * Prometheus counters whose value is *set* from the snapshot on every scrape (reset, then
 * inc by the observed value): `rate()` works, and a stats reset in Postgres reads as an
 * ordinary counter reset. Series of instances or databases that disappeared go away with the
 * reset.
 *
 * A failing instance (query undefined, connection refused, timeout, SQL error) reads as
 * up=0 with no other series; a scrape never throws because of Postgres.
 */
export type PgQuery = (sql: string) => Promise<{ rows: any[] }> // eslint-disable-line @typescript-eslint/no-explicit-any

export interface PostgresTarget {
  instance: string
  role: string
  query: PgQuery | undefined
}

/** The pg_stat_database columns exported as counters (all exist in Postgres 12+). */
export const DATABASE_COUNTERS = [
  'xact_commit',
  'xact_rollback',
  'blks_read',
  'blks_hit',
  'tup_returned',
  'tup_fetched',
  'tup_inserted',
  'tup_updated',
  'tup_deleted',
  'conflicts',
  'temp_files',
  'temp_bytes',
  'deadlocks',
] as const
type DatabaseCounter = (typeof DATABASE_COUNTERS)[number]

/**
 * Everything one scrape needs from an instance, in one statement: one round trip, and one
 * connection when the query function connects per call. Counters travel as JSON numbers
 * (exact below 2^53, far beyond any pg_stat_database value in practice).
 */
export const SNAPSHOT_SQL = `select json_build_object(
  'in_recovery', pg_is_in_recovery(),
  'max_connections', current_setting('max_connections')::int,
  'connections', (select coalesce(json_object_agg(state, n), '{}'::json) from (
      select coalesce(state, 'unknown') as state, count(*) as n
      from pg_stat_activity where backend_type = 'client backend' group by 1) c),
  'databases', (select coalesce(json_agg(json_build_object(
      'datname', d.datname, 'size_bytes', pg_database_size(d.oid),
      ${DATABASE_COUNTERS.map((c) => `'${c}', s.${c}`).join(', ')})), '[]'::json)
    from pg_database d join pg_stat_database s on s.datid = d.oid
    where d.datallowconn and not d.datistemplate)
) as snapshot`

const CONNECTION_STATES = ['active', 'idle', 'idle in transaction', 'idle in transaction (aborted)', 'fastpath function call', 'disabled']

interface InstanceSnapshot {
  instance: string
  role: string
  up: boolean
  inRecovery?: boolean
  maxConnections?: number
  connections?: Map<string, number>
  databases?: Array<{ datname: string; sizeBytes: number; counters: Record<DatabaseCounter, number> }>
}

export interface PostgresCollectorOptions {
  timeoutMs?: number
  onError?: (instance: string, err: unknown) => void
}

interface Registration {
  source: () => Promise<PostgresTarget[]>
  opts: PostgresCollectorOptions
  names: string[]
}

const registrations = new WeakMap<Registry, Registration>()

/**
 * Registers the collector on `registry` and returns a function that removes it.
 *
 * Idempotent per registry: a component that registers again when it is restarted replaces
 * the source and options instead of failing on prom-client's duplicate-name check.
 */
export function registerPostgresCollector(
  registry: Registry,
  source: () => Promise<PostgresTarget[]>,
  opts: PostgresCollectorOptions = {},
): () => void {
  const unregister = () => {
    const r = registrations.get(registry)
    if (r === undefined) return
    for (const n of r.names) registry.removeSingleMetric(n)
    registrations.delete(registry)
  }
  const existing = registrations.get(registry)
  if (existing !== undefined) {
    existing.source = source
    existing.opts = opts
    return unregister
  }
  const reg: Registration = { source, opts, names: [] }
  registrations.set(registry, reg)

  // All metrics of one scrape share one snapshot: prom-client calls every collect() of a
  // registry.metrics() call synchronously before awaiting any, so they all see the same
  // in-flight promise; the next scrape starts a fresh one.
  let inflight: Promise<InstanceSnapshot[]> | undefined
  const snapshot = (): Promise<InstanceSnapshot[]> => {
    if (inflight === undefined) {
      inflight = takeSnapshot(reg.source, reg.opts.timeoutMs ?? 5_000, reg.opts.onError).finally(() => {
        inflight = undefined
      })
    }
    return inflight
  }

  new Gauge({
    name: 'magflock_postgres_up',
    help: 'Whether the Postgres instance answered the metrics queries (1) or not (0).',
    labelNames: ['instance', 'role'] as const,
    registers: [registry],
    async collect() {
      const snap = await snapshot()
      this.reset()
      for (const s of snap) this.set({ instance: s.instance, role: s.role }, s.up ? 1 : 0)
    },
  })
  new Gauge({
    name: 'magflock_postgres_in_recovery',
    help: 'Whether the instance is a standby in recovery (1) or accepts writes (0).',
    labelNames: ['instance'] as const,
    registers: [registry],
    async collect() {
      const snap = await snapshot()
      this.reset()
      for (const s of snap) if (s.inRecovery !== undefined) this.set({ instance: s.instance }, s.inRecovery ? 1 : 0)
    },
  })
  new Gauge({
    name: 'magflock_postgres_max_connections',
    help: 'The max_connections setting of the instance.',
    labelNames: ['instance'] as const,
    registers: [registry],
    async collect() {
      const snap = await snapshot()
      this.reset()
      for (const s of snap) if (s.maxConnections !== undefined) this.set({ instance: s.instance }, s.maxConnections)
    },
  })
  new Gauge({
    name: 'magflock_postgres_connections',
    help: 'Client connections by state (pg_stat_activity).',
    labelNames: ['instance', 'state'] as const,
    registers: [registry],
    async collect() {
      const snap = await snapshot()
      this.reset()
      for (const s of snap) for (const [state, n] of s.connections ?? []) this.set({ instance: s.instance, state }, n)
    },
  })
  new Gauge({
    name: 'magflock_postgres_database_size_bytes',
    help: 'Size of each database on disk, in bytes.',
    labelNames: ['instance', 'datname'] as const,
    registers: [registry],
    async collect() {
      const snap = await snapshot()
      this.reset()
      for (const s of snap) for (const d of s.databases ?? []) this.set({ instance: s.instance, datname: d.datname }, d.sizeBytes)
    },
  })
  for (const column of DATABASE_COUNTERS) {
    new Counter({
      name: `magflock_postgres_${column}_total`,
      help: `pg_stat_database.${column}: cumulative since the last statistics reset.`,
      labelNames: ['instance', 'datname'] as const,
      registers: [registry],
      async collect() {
        const snap = await snapshot()
        this.reset()
        for (const s of snap) {
          for (const d of s.databases ?? []) this.inc({ instance: s.instance, datname: d.datname }, d.counters[column])
        }
      },
    })
  }
  reg.names = registry
    .getMetricsAsArray()
    .map((m) => (m as unknown as { name: string }).name)
    .filter((n) => n.startsWith('magflock_postgres_'))
  return unregister
}

async function takeSnapshot(
  source: () => Promise<PostgresTarget[]>,
  timeoutMs: number,
  onError: ((instance: string, err: unknown) => void) | undefined,
): Promise<InstanceSnapshot[]> {
  let targets: PostgresTarget[]
  try {
    targets = await source()
  } catch (err) {
    onError?.('*', err)
    return []
  }
  return Promise.all(
    targets.map(async (t): Promise<InstanceSnapshot> => {
      const down: InstanceSnapshot = { instance: t.instance, role: t.role, up: false }
      if (t.query === undefined) return down
      let timer: NodeJS.Timeout | undefined
      try {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`metrics queries took longer than ${timeoutMs} ms`)), timeoutMs)
          timer.unref()
        })
        return await Promise.race([queryInstance(t, t.query), timeout])
      } catch (err) {
        onError?.(t.instance, err)
        return down
      } finally {
        if (timer !== undefined) clearTimeout(timer)
      }
    }),
  )
}

interface SnapshotRow {
  in_recovery: boolean
  max_connections: number
  connections: Record<string, number>
  databases: Array<Record<string, unknown>>
}

async function queryInstance(t: PostgresTarget, query: PgQuery): Promise<InstanceSnapshot> {
  const res = await query(SNAPSHOT_SQL)
  const raw = (res.rows[0] as { snapshot?: unknown } | undefined)?.snapshot
  // pg parses json columns; a driver that hands back text gets parsed here.
  const row = (typeof raw === 'string' ? JSON.parse(raw) : raw) as SnapshotRow | undefined
  if (row === undefined || row === null || typeof row !== 'object') throw new Error('metrics snapshot query returned no row')
  const connections = new Map<string, number>(CONNECTION_STATES.map((s) => [s, 0]))
  for (const [state, n] of Object.entries(row.connections ?? {})) connections.set(state, num(n))
  const databases = (row.databases ?? [])
    .filter((r) => typeof r.datname === 'string')
    .map((r) => {
      const counters = {} as Record<DatabaseCounter, number>
      for (const c of DATABASE_COUNTERS) counters[c] = Math.max(0, num(r[c]))
      return { datname: r.datname as string, sizeBytes: num(r.size_bytes), counters }
    })
  return {
    instance: t.instance,
    role: t.role,
    up: true,
    inRecovery: row.in_recovery === true,
    maxConnections: num(row.max_connections),
    connections,
    databases,
  }
}

function num(v: unknown): number {
  const n = typeof v === 'number' ? v : Number(v)
  return Number.isFinite(n) ? n : 0
}
