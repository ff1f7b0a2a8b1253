import type pg from 'pg'
import { MIGRATE_LOCK_TIMEOUT } from './errors.js'
import { lockHolders, lockKeyParts, tryLock, unlock } from './sql.js'

/**
 * The migration lock: postgres-migrations polls its session advisory lock every second,
 * forever, and says nothing about who holds it. MagFlock takes the same lock first with
 * `pg_try_advisory_lock` polling and a deadline, and names the holder when it gives up.
 */
export interface LockHolder {
  pid: number
  applicationName: string
  user: string | null
  backendStart: string | null
  state: string | null
}

export function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'a session that has since ended'
  // Fields of other roles' sessions can be NULL without pg_read_all_stats.
  return `pid ${h.pid} (application "${h.applicationName || 'unknown'}", user ${h.user ?? 'unknown'}, connected since ${h.backendStart ?? 'unknown'}, ${h.state ?? 'unknown state'})`
}

export async function migrationLockHolder(client: pg.Client): Promise<LockHolder | undefined> {
  const { classid, objid } = lockKeyParts()
  const r = await client.query<{ pid: number; application_name: string; usename: string | null; backend_start: string | null; state: string | null }>(
    lockHolders(),
    [classid, objid],
  )
  const row = r.rows[0]
  if (!row) return undefined
  return { pid: row.pid, applicationName: row.application_name, user: row.usename, backendStart: row.backend_start, state: row.state }
}

export interface AcquireOptions {
  database: string
  timeoutMs: number
  pollMs?: number
  /** Called once when the lock is busy, with who holds it. */
  onWait?: (holder: LockHolder | undefined) => void
  signal?: AbortSignal | undefined
}

export async function acquireMigrationLock(client: pg.Client, opts: AcquireOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs
  const pollMs = opts.pollMs ?? 100
  let told = false
  for (;;) {
    const r = await client.query<{ ok: boolean }>(tryLock())
    if (r.rows[0]?.ok) return
    if (!told) {
      told = true
      opts.onWait?.(await migrationLockHolder(client))
    }
    if (Date.now() >= deadline || opts.signal?.aborted) {
      const holder = await migrationLockHolder(client)
      throw MIGRATE_LOCK_TIMEOUT(
        { database: opts.database, seconds: Math.round(opts.timeoutMs / 100) / 10, holder: describeHolder(holder) },
        { details: { holder: holder ?? null } },
      )
    }
    await new Promise((res) => setTimeout(res, Math.min(pollMs, Math.max(1, deadline - Date.now()))))
  }
}

export async function releaseMigrationLock(client: pg.Client): Promise<void> {
  await client.query(unlock())
}
