import pg from 'pg'
import { POOLER_UNAVAILABLE } from './errors.js'

/**
 * PgBouncer's admin console (the `pgbouncer` pseudo-database), spoken with node-postgres over
 * the simple query protocol: SHOW POOLS/STATS for status and metrics; PAUSE, RELOAD,
 * RECONNECT and RESUME to follow the primary. The flock's superuser is its admin user; its
 * password comes from the vault at call time.
 */
export interface AdminTarget {
  host: string
  port: number
  user: string
  password(): Promise<string>
}

export interface PoolRow {
  database: string
  user: string
  clientsActive: number
  clientsWaiting: number
  serversActive: number
  serversIdle: number
  serversUsed: number
  maxWaitSeconds: number
  poolMode: string
}

export interface StatsRow {
  database: string
  totalXactCount: number
  totalQueryCount: number
  totalReceived: number
  totalSent: number
  totalXactTimeUs: number
  totalQueryTimeUs: number
  totalWaitTimeUs: number
  avgXactTimeUs: number
  avgQueryTimeUs: number
}

const num = (x: unknown): number => (x === null || x === undefined || x === '' ? 0 : Number(x))

export async function withAdmin<T>(t: AdminTarget, fn: (c: pg.Client) => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const c = new pg.Client({ host: t.host, port: t.port, user: t.user, password: await t.password(), database: 'pgbouncer', connectionTimeoutMillis: timeoutMs })
  c.on('error', () => undefined)
  try {
    await c.connect()
  } catch (err) {
    throw POOLER_UNAVAILABLE({ reason: (err as Error).message }, { cause: err })
  }
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => undefined)
  }
}

export async function showPools(c: pg.Client): Promise<PoolRow[]> {
  const r = await c.query<Record<string, unknown>>('SHOW POOLS')
  return r.rows
    .filter((x) => x.database !== 'pgbouncer')
    .map((x) => ({
      database: String(x.database),
      user: String(x.user),
      clientsActive: num(x.cl_active),
      clientsWaiting: num(x.cl_waiting),
      serversActive: num(x.sv_active),
      serversIdle: num(x.sv_idle),
      serversUsed: num(x.sv_used),
      maxWaitSeconds: num(x.maxwait) + num(x.maxwait_us) / 1e6,
      poolMode: String(x.pool_mode ?? ''),
    }))
}

export async function showStats(c: pg.Client): Promise<StatsRow[]> {
  const r = await c.query<Record<string, unknown>>('SHOW STATS')
  return r.rows
    .filter((x) => x.database !== 'pgbouncer')
    .map((x) => ({
      database: String(x.database),
      totalXactCount: num(x.total_xact_count),
      totalQueryCount: num(x.total_query_count),
      totalReceived: num(x.total_received),
      totalSent: num(x.total_sent),
      totalXactTimeUs: num(x.total_xact_time),
      totalQueryTimeUs: num(x.total_query_time),
      totalWaitTimeUs: num(x.total_wait_time),
      avgXactTimeUs: num(x.avg_xact_time),
      avgQueryTimeUs: num(x.avg_query_time),
    }))
}

/** One admin command (PAUSE, RESUME, RELOAD, RECONNECT…); names come from our code only. */
export async function adminCommand(t: AdminTarget, command: 'PAUSE' | 'RESUME' | 'RELOAD' | 'RECONNECT', timeoutMs = 5_000): Promise<void> {
  await withAdmin(
    t,
    async (c) => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(POOLER_UNAVAILABLE({ reason: `${command} did not finish within ${timeoutMs} ms` })), timeoutMs)
      })
      try {
        await Promise.race([c.query(command), timeout])
      } catch (err) {
        // "already suspended/paused" and "pooler is not paused" are states, not failures.
        if (!/already|not paused/i.test((err as Error).message)) throw err
      } finally {
        clearTimeout(timer)
      }
    },
    timeoutMs,
  )
}

/**
 * Wakes PgBouncer's event loop a few times after a repoint. PgBouncer launches a new server
 * connection for waiting clients only when its loop turns (an event, or its maintenance timer
 * three times a second), and not within server_login_retry of a failed login: after a failover
 * its last login to the dead primary failed moments ago, so without a nudge the clients wait up
 * to a third of a second for the next timer. Each query on the admin console is such an event.
 */
export async function nudge(t: AdminTarget, delaysMs: number[]): Promise<void> {
  await withAdmin(t, async (c) => {
    for (const d of delaysMs) {
      await new Promise((r) => setTimeout(r, d))
      await c.query('SHOW VERSION')
    }
  })
}
