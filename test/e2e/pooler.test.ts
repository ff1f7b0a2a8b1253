import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, statSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import pg from 'pg'
import { createFlock, type Flock } from '../helpers/flock.js'
import { freePort } from '../../src/platform/ports.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { waitFor } from '../helpers/wait.js'
import type { PoolerStatusResult } from '../../src/api/pooler.js'
import type { DbUrlResult } from '../../src/api/db.js'

/**
 * The managed PgBouncer against a real kernel and Postgres: many clients through few server
 * connections, status, pooled URLs, kill -9 of PgBouncer and of the kernel, bad config.
 */
describe('pooler (managed PgBouncer)', () => {
  let f: Flock
  let poolerPort: number
  let pgPort: number
  let password: string
  const pidOf = () => Number(readFileSync(path.join(f.stateDir, 'pooler', 'pgbouncer.pid'), 'utf8').trim())
  const pooled = (o: Partial<pg.ClientConfig> = {}) => new pg.Client({ host: '127.0.0.1', port: poolerPort, user: 'postgres', password, database: 'postgres', ...o })

  beforeAll(async () => {
    pgPort = await freePort()
    poolerPort = await freePort()
    f = await createFlock({
      yaml: `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\n    max_connections: 50\nmetrics:\n  port: ${await freePort()}\npooler:\n  enabled: true\n  port: ${poolerPort}\n  defaultPoolSize: 10\n`,
    })
    const r = await f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    password = await f.superuserPassword()
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('keeps its files private to the Postgres OS user and writes no plain password', () => {
    const dir = path.join(f.stateDir, 'pooler')
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    for (const file of ['pgbouncer.ini', 'userlist.txt']) expect(statSync(path.join(dir, file)).mode & 0o777).toBe(0o600)
    const userlist = readFileSync(path.join(dir, 'userlist.txt'), 'utf8')
    expect(userlist).toMatch(/^"postgres" "SCRAM-SHA-256\$/m)
    expect(userlist).not.toContain(password)
    expect(readFileSync(path.join(dir, 'pgbouncer.ini'), 'utf8')).not.toContain(password)
  })

  it('serves 300 concurrent clients with max_connections = 50', async () => {
    const clients = Array.from({ length: 300 }, () => pooled())
    try {
      const connected = await Promise.allSettled(clients.map((c) => c.connect()))
      const failed = connected.flatMap((x) => (x.status === 'rejected' ? [(x.reason as Error).message] : []))
      expect(failed, readFileSync(path.join(f.stateDir, 'pooler', 'pgbouncer.log'), 'utf8').slice(-3000)).toEqual([])
      const rows = await Promise.all(clients.map(async (c, i) => (await c.query('select $1::int as i, pg_sleep(0.02)', [i])).rows[0].i as number))
      expect(rows).toEqual(Array.from({ length: 300 }, (_, i) => i))
      // Postgres saw at most the pool, never 300 backends.
      const direct = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: 'postgres' })
      await direct.connect()
      const backends = (await direct.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where backend_type = 'client backend'")).rows[0]!.n
      await direct.end()
      expect(backends).toBeGreaterThan(0)
      expect(backends).toBeLessThanOrEqual(50)
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)))
    }
  })

  it('pooler status shows the pools from SHOW POOLS / SHOW STATS', async () => {
    const r = await f.run<PoolerStatusResult>(['pooler', 'status', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    if (!r.json?.ok) throw new Error(r.stdout)
    const s = r.json.data
    expect(s).toMatchObject({ enabled: true, running: true, port: poolerPort, poolMode: 'transaction', paused: false })
    expect(s.pid).toBe(pidOf())
    const pool = s.pools.find((p) => p.database === 'postgres' && p.user === 'postgres')
    expect(pool).toBeDefined()
    expect(pool!.serversActive + pool!.serversIdle + pool!.serversUsed).toBeLessThanOrEqual(10)
    expect(s.stats.find((x) => x.database === 'postgres')!.totalXactCount).toBeGreaterThanOrEqual(300)
    const text = await f.run(['pooler', 'status'])
    expect(text.stdout).toContain(`127.0.0.1:${poolerPort}`)
  })

  it('db url --pooled works for a database created a moment ago', async () => {
    expect((await f.run(['db', 'create', 'app', '--json'])).exitCode).toBe(0)
    const r = await f.run<DbUrlResult>(['db', 'url', 'app', '--pooled', '--reveal', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    if (!r.json?.ok) throw new Error(r.stdout)
    expect(r.json.data.port).toBe(poolerPort)
    const c = new pg.Client({ connectionString: r.json.data.url })
    await c.connect()
    expect((await c.query('select current_user as u, current_database() as d')).rows[0]).toEqual({ u: r.json.data.owner, d: 'app' })
    await c.end()
  })

  it('exports PgBouncer stats as Prometheus metrics', async () => {
    const text = await waitFor('pooler metrics', async () => {
      const t = (await f.run(['metrics'])).stdout
      return /magflock_pooler_up 1/.test(t) && /magflock_pooler_transactions_total\{database="postgres"\} \d+/.test(t) ? t : undefined
    }, 30_000, 500)
    expect(Number(/magflock_pooler_transactions_total\{database="postgres"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(300)
  })

  it('kill -9 of PgBouncer: the kernel restarts it', async () => {
    const before = pidOf()
    process.kill(before, 'SIGKILL')
    const after = await waitFor('a new pgbouncer', async () => {
      const pid = (() => {
        try {
          return pidOf()
        } catch {
          return 0
        }
      })()
      return pid !== before && pid > 0 && isProcessAliveSync(pid) ? pid : undefined
    })
    const c = await waitFor('pgbouncer serving again', async () => {
      const c = pooled()
      await c.connect()
      return c
    })
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1)
    await c.end()
    expect(after).not.toBe(before)
  })

  it('kill -9 of the kernel: PgBouncer keeps serving, the next kernel adopts it', async () => {
    const bouncer = pidOf()
    const info = await readKernelInfo(f.layout)
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid))
    const c = pooled()
    await c.connect()
    expect((await c.query('select 2 as two')).rows[0].two).toBe(2)
    await c.end()
    const up = await f.run(['kernel', 'start', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const s = await f.run<PoolerStatusResult>(['pooler', 'status', '--json'])
    expect(s.json?.ok && s.json.data.pid).toBe(bouncer)
    expect(isProcessAliveSync(bouncer)).toBe(true)
  })

  it('a bad pooler config value is refused naming the key, and nothing changes', async () => {
    const yaml = path.join(f.projectDir, 'magflock.yaml')
    const before = readFileSync(yaml, 'utf8')
    const pid = pidOf()
    for (const [key, value] of [['pooler.poolMode', 'sometimes'], ['pooler.port', '70000'], ['pooler.defaultPoolSize', '0']] as const) {
      const r = await f.run(['config', 'set', key, value, '--json'])
      expect(r.exitCode).not.toBe(0)
      expect(r.json?.ok).toBe(false)
      if (r.json?.ok === false) expect(`${r.json.error.message} ${JSON.stringify(r.json.error.details ?? {})}`).toContain(key)
    }
    expect(readFileSync(yaml, 'utf8')).toBe(before)
    expect(pidOf()).toBe(pid)
    const c = pooled()
    await c.connect()
    await c.end()
  })

  it('down stops PgBouncer too', async () => {
    const pid = pidOf()
    const r = await f.run(['down', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    await waitFor('pgbouncer to exit', async () => !isProcessAliveSync(pid), 20_000)
  })

  it('a changed pooler.port restarts PgBouncer at the next boot; `pooler disable` stops it', async () => {
    expect((await f.run(['kernel', 'start', '--json'])).exitCode).toBe(0)
    const first = pidOf()
    const newPort = await freePort()
    expect((await f.run(['config', 'set', 'pooler.port', String(newPort), '--json'])).exitCode).toBe(0)
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    expect(isProcessAliveSync(first)).toBe(true)
    expect((await f.run(['kernel', 'start', '--json'])).exitCode).toBe(0)
    const second = pidOf()
    expect(second).not.toBe(first)
    expect(isProcessAliveSync(first)).toBe(false)
    const c = pooled({ port: newPort })
    await c.connect()
    await c.end()
    expect((await f.run(['pooler', 'disable', '--json'])).exitCode).toBe(0)
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    expect((await f.run(['kernel', 'start', '--json'])).exitCode).toBe(0)
    expect(isProcessAliveSync(second)).toBe(false)
    const s = await f.run<PoolerStatusResult>(['pooler', 'status', '--json'])
    expect(s.json?.ok && s.json.data).toMatchObject({ enabled: false, running: false })
    const url = await f.run(['db', 'url', 'app', '--pooled', '--json'])
    expect(url.json?.ok === false && url.json.error.code).toBe('E_POOLER_DISABLED')
    expect((await f.run(['pooler', 'enable', '--json'])).exitCode).toBe(0)
    expect((await f.run(['config', 'set', 'pooler.port', String(poolerPort), '--json'])).exitCode).toBe(0)
    expect((await f.run(['down', '--json'])).exitCode).toBe(0)
  })

  it('pooler.port taken: the kernel refuses to boot naming pooler.port, and leaves nothing running', async () => {
    const squatter = net.createServer()
    await new Promise<void>((resolve) => squatter.listen(poolerPort, '127.0.0.1', resolve))
    try {
      const r = await f.run(['kernel', 'start', '--json'])
      expect(r.exitCode).not.toBe(0)
      expect(r.stdout + r.stderr).toContain('pooler.port')
      expect(await f.postmasterPid()).toBeUndefined()
      expect(await readKernelInfo(f.layout).catch(() => undefined)).toBeUndefined()
    } finally {
      await new Promise((resolve) => squatter.close(resolve))
    }
  })
})
