import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { createFlock, type Flock } from '../helpers/flock.js'
import { freePort } from '../../src/platform/ports.js'
import { waitFor } from '../helpers/wait.js'
import { query } from '../helpers/sql.js'
import type { PoolerStatusResult } from '../../src/api/pooler.js'
import type { DbUrlResult } from '../../src/api/db.js'
import type { ReplicationStatus } from '../../src/api/replication.js'

/**
 * The read-only pool of the managed PgBouncer: `<db>.ro` spreads new server connections over
 * the streaming replicas (round robin), leaves out a replica that lags beyond
 * pooler.readOnly.maxLagBytes, and falls back to the primary, read-only, when none qualifies.
 */
describe('pooler read-only pool (<db>.ro)', () => {
  let f: Flock
  let poolerPort: number
  let password: string
  const members = async () => {
    const r = await f.run<ReplicationStatus>(['replica', 'list', '--json'])
    if (!r.json?.ok) throw new Error(`replica list failed: ${r.stdout} ${r.stderr}`)
    return r.json.data.members
  }
  const status = async () => {
    const r = await f.run<PoolerStatusResult>(['pooler', 'status', '--json'])
    if (!r.json?.ok) throw new Error(`pooler status failed: ${r.stdout} ${r.stderr}`)
    return r.json.data
  }
  /** `config set` then `config reload`: pooler.readOnly.* applies to a running kernel. */
  const setLive = async (key: string, value: string) => {
    for (const args of [['config', 'set', key, value, '--json'], ['config', 'reload', '--json']]) {
      const r = await f.run<{ applied: string[] }>(args)
      expect(r.exitCode, `${args.join(' ')}: ${r.stdout} ${r.stderr}`).toBe(0)
      if (args[1] === 'reload' && r.json?.ok) expect(r.json.data.applied).toContain(key)
    }
  }
  /** Opens `n` read-only connections at once and returns the port each one's server listens on. */
  const roPorts = async (n: number, database = 'postgres.ro'): Promise<number[]> => {
    const clients = Array.from({ length: n }, () => new pg.Client({ host: '127.0.0.1', port: poolerPort, user: 'postgres', password, database }))
    try {
      await Promise.all(clients.map((c) => c.connect()))
      // Held together (pg_sleep) so that each takes its own server connection.
      const rows = await Promise.all(clients.map(async (c) => (await c.query<{ port: number }>("select current_setting('port')::int as port, pg_sleep(0.3)")).rows[0]!.port))
      return rows
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)))
    }
  }

  beforeAll(async () => {
    poolerPort = await freePort()
    f = await createFlock({
      yaml:
        `postgres:\n  port: ${await freePort()}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${await freePort()}\n` +
        `replication:\n  basePort: ${await freePort()}\npooler:\n  enabled: true\n  port: ${poolerPort}\n  poolMode: session\n`,
    })
    for (const args of [['kernel', 'start', '--json'], ['replica', 'add', 'r1', '--json'], ['replica', 'add', 'r2', '--json']]) {
      const r = await f.run(args)
      expect(r.exitCode, `${args.join(' ')}: ${r.stdout} ${r.stderr}`).toBe(0)
    }
    password = await f.superuserPassword()
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('spreads <db>.ro over both streaming replicas, read-only, and says so in pooler status', async () => {
    const ms = await members()
    const replicaPorts = ms.filter((m) => m.role === 'replica').map((m) => m.port).sort()
    expect(replicaPorts).toHaveLength(2)
    await waitFor('both replicas serve the read-only pool', async () => (await status()).readOnly?.serving.length === 2, 30_000, 200)
    const s = await status()
    expect(s.readOnly).toMatchObject({ serving: ['r1', 'r2'], excluded: [], via: 'sockets' })
    const ports = await roPorts(6)
    expect([...new Set(ports)].sort()).toEqual(replicaPorts)
    const c = new pg.Client({ host: '127.0.0.1', port: poolerPort, user: 'postgres', password, database: 'postgres.ro' })
    await c.connect()
    try {
      expect((await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]!.r).toBe(true)
      await expect(c.query('create table nope (x int)')).rejects.toThrow(/read-only transaction/)
    } finally {
      await c.end()
    }
    const human = await f.run(['pooler', 'status'])
    expect(human.stdout).toMatch(/read-only <db>\.ro → r1, r2 \(round robin, Unix sockets\)/)
  })

  it('db url --pooled --read-only names <db>.ro for a database created a moment ago, and it connects', async () => {
    const created = await f.run(['db', 'create', 'shop', '--json'])
    expect(created.exitCode, created.stdout + created.stderr).toBe(0)
    const r = await f.run<DbUrlResult>(['db', 'url', 'shop', '--pooled', '--read-only', '--reveal', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    if (!r.json?.ok) throw new Error(r.stdout)
    expect(r.json.data.url).toMatch(new RegExp(`@127\\.0\\.0\\.1:${poolerPort}/shop\\.ro$`))
    // The replicas have the new database once they replayed its creation.
    await waitFor('shop.ro answers', async () => {
      const c = new pg.Client({ connectionString: r.json!.ok ? r.json!.data.url : '' })
      try {
        await c.connect()
        return (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]!.r
      } catch {
        return false
      } finally {
        await c.end().catch(() => undefined)
      }
    }, 30_000, 200)
  })

  it('--read-only without --pooled is a usage error with a code and a hint', async () => {
    const r = await f.run(['db', 'url', 'shop', '--read-only', '--json'])
    expect(r.exitCode).not.toBe(0)
    expect(r.json?.ok).toBe(false)
    if (r.json?.ok === false) {
      expect(r.json.error.code).toMatch(/^E_/)
      expect(r.json.error.hint).toBeTruthy()
    }
  })

  it('a replica beyond the lag bound leaves the pool and comes back when it catches up', async () => {
    const ms = await members()
    const primary = ms.find((m) => m.role === 'primary')!
    const r2 = ms.find((m) => m.name === 'r2')!
    await setLive('pooler.readOnly.maxLagBytes', '65536')
    // r2 stops replaying; the primary writes well past the bound.
    await query(r2.port, password, 'select pg_wal_replay_pause()')
    try {
      await query(primary.port, password, "create table lagme as select g, repeat('x', 200) as pad from generate_series(1, 5000) g")
      await waitFor('r2 left out for lag', async () => {
        const ro = (await status()).readOnly
        return ro?.serving.join(',') === 'r1' && ro.excluded.some((e) => e.name === 'r2' && /replay lag/.test(e.reason))
      }, 30_000, 200)
      const ports = await roPorts(4)
      expect(new Set(ports)).toEqual(new Set([ms.find((m) => m.name === 'r1')!.port]))
    } finally {
      await query(r2.port, password, 'select pg_wal_replay_resume()')
    }
    await waitFor('r2 back in the pool', async () => (await status()).readOnly?.serving.length === 2, 30_000, 200)
  })

  it('with no replica left, <db>.ro goes to the primary with read-only transactions', async () => {
    const ms = await members()
    const primary = ms.find((m) => m.role === 'primary')!
    await setLive('pooler.readOnly.maxLagBytes', '0')
    // Both replicas pause; any write then puts them past a bound of 0.
    for (const m of ms.filter((x) => x.role === 'replica')) await query(m.port, password, 'select pg_wal_replay_pause()')
    try {
      await query(primary.port, password, 'create table bump (x int)')
      await waitFor('primary serves reads', async () => (await status()).readOnly?.via === 'primary', 30_000, 200)
      const c = new pg.Client({ host: '127.0.0.1', port: poolerPort, user: 'postgres', password, database: 'postgres.ro' })
      await c.connect()
      try {
        expect((await c.query<{ r: boolean; port: number }>("select pg_is_in_recovery() as r, current_setting('port')::int as port")).rows[0]).toEqual({ r: false, port: primary.port })
        await expect(c.query('insert into bump values (1)')).rejects.toThrow(/read-only transaction/)
      } finally {
        await c.end()
      }
    } finally {
      for (const m of ms.filter((x) => x.role === 'replica')) await query(m.port, password, 'select pg_wal_replay_resume()').catch(() => undefined)
    }
  })
})
