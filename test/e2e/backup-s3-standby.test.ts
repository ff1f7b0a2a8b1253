import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReplicatedFlock, type Flock } from '../helpers/flock.js'

/**
 * `backup.source: prefer-standby` (issue 13): with a replica in the flock the physical backup
 * is read from it, not from the primary, and restores like any other. Built CLI, real kernel.
 */
describe('physical backup from a standby (backup.source=prefer-standby)', { timeout: 300_000 }, () => {
  let f: Flock
  let password = ''
  let pgPort = 0
  /** createReplicatedFlock picks its own primary port (f.pgPort is not it). */
  async function sql<T>(db: string, text: string): Promise<T[]> {
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: db })
    await c.connect()
    try {
      return (await c.query(text)).rows as T[]
    } finally {
      await c.end()
    }
  }
  const env = { MAGFLOCK_BACKUP__SOURCE: 'prefer-standby' }

  beforeAll(async () => {
    const r = await createReplicatedFlock(env)
    f = r.f
    password = r.password
    pgPort = r.pgPort
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('reads the backup from the replica and restores it', async () => {
    await sql('postgres', 'create database app')
    await sql('app', `create table t(v text); insert into t values ('from-standby')`)
    // The row must have reached the replica before the backup reads it.
    const lsn = (await sql<{ l: string }>('postgres', 'select pg_current_wal_lsn()::text as l'))[0]!.l
    for (let i = 0; i < 200; i++) {
      const rows = await sql<{ ok: boolean }>('postgres', `select coalesce(bool_and(replay_lsn >= '${lsn}'), false) as ok from pg_stat_replication`)
      if (rows[0]?.ok) break
      await new Promise((res) => setTimeout(res, 100))
    }
    const c = await f.run<{ id: string; source: string }>(['backup', 'create', '--json'], { env })
    expect(c.exitCode, c.stdout + c.stderr).toBe(0)
    const data = (c.json as { data: { id: string; source: string } }).data
    expect(data.source).toBe('r1')
    const r = await f.run<{ port: number }>(['backup', 'restore', data.id, '--to-instance', 'copy', '--json'], { env })
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const port = (r.json as { data: { port: number } }).data.port
    const cl = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'app' })
    await cl.connect()
    try {
      expect((await cl.query<{ v: string }>('select v from t')).rows.map((x) => x.v)).toEqual(['from-standby'])
      expect((await cl.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]!.r).toBe(false)
    } finally {
      await cl.end()
    }
  })
})
