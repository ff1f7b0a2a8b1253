import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'
import { freePort } from '../../src/platform/ports.js'
import { renderHaproxyCfg } from '../../src/health/haproxy.js'

const HAPROXY = '/usr/sbin/haproxy'
type Inst = { name: string; role: string; port: number }

/**
 * Patroni-compatible health endpoints of a real flock (primary + one replica), and the real
 * Debian HAProxy with templates/haproxy.cfg on loopback: a switchover moves HAProxy's write
 * backend to the new primary.
 */
describe('health endpoints and HAProxy (health.enabled)', () => {
  let f: Flock
  let password: string
  let haproxy: ChildProcess | undefined
  let writePort: number
  let readPort: number
  const offset = 2000
  const instances = async (): Promise<Inst[]> => {
    const r = await f.run<{ instances: Inst[] }>(['status', '--json'])
    if (!r.json?.ok) throw new Error(r.stdout + r.stderr)
    return r.json.data.instances.filter((i) => i.role === 'primary' || i.role === 'replica')
  }
  const check = async (port: number, p: string, method = 'GET') => {
    const res = await fetch(`http://127.0.0.1:${port + offset}${p}`, { method })
    return { status: res.status, body: method === 'GET' ? await res.text() : '' }
  }
  /** Port of the server HAProxy routed this connection to, or undefined when it refused. */
  const through = async (port: number): Promise<number | undefined> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 3000 })
    c.on('error', () => undefined)
    try {
      await c.connect()
      return (await c.query<{ p: number }>('select inet_server_port() as p')).rows[0]?.p
    } catch {
      return undefined
    } finally {
      await c.end().catch(() => undefined)
    }
  }

  beforeAll(async () => {
    const pgPort = await freePort()
    f = await createFlock({
      yaml: `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\nhealth:\n  enabled: true\n  portOffset: ${offset}\nbackup:\n  walArchiving: false\n`,
    })
    for (const args of [['kernel', 'start', '--json'], ['replica', 'add', '--json']]) {
      const r = await f.run(args)
      expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    }
    password = await f.superuserPassword()
  })
  afterAll(async () => {
    haproxy?.kill('SIGKILL')
    await f.destroy()
  })

  it('answers 200/503 per endpoint as Patroni does, for GET, HEAD and OPTIONS, without secrets', async () => {
    const all = await instances()
    const p = all.find((i) => i.role === 'primary')!
    const r = all.find((i) => i.role === 'replica')!
    await waitFor('the replica health port to answer 200 on /replica', async () => (await check(r.port, '/replica').catch(() => ({ status: 0 }))).status === 200, 30_000)
    const want: Array<[string, number, number]> = [
      ['/primary', 200, 503], ['/', 200, 503], ['/read-write', 200, 503], ['/replica', 503, 200],
      ['/read-only', 200, 200], ['/health', 200, 200], ['/liveness', 200, 200], ['/readiness', 200, 200],
    ]
    for (const [pathname, onPrimary, onReplica] of want) {
      expect((await check(p.port, pathname)).status, `${pathname} on the primary`).toBe(onPrimary)
      expect((await check(r.port, pathname)).status, `${pathname} on the replica`).toBe(onReplica)
    }
    expect((await check(p.port, '/primary', 'OPTIONS')).status).toBe(200)
    expect((await check(r.port, '/primary', 'HEAD')).status).toBe(503)
    expect((await check(p.port, '/primary', 'POST')).status).toBe(405)
    expect((await check(p.port, '/nope')).status).toBe(404)
    const body = (await check(p.port, '/primary')).body
    expect(JSON.parse(body)).toMatchObject({ state: 'running', role: 'primary', name: p.name })
    expect(body).not.toContain(password)
  })

  it('replica add --node on a one-host flock is refused (exit 2) and adds nothing', async () => {
    const before = (await instances()).map((i) => i.name)
    const r = await f.run(['replica', 'add', '--node', 'b', '--sync', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(2)
    expect(r.json?.ok === false && r.json.error.code).toBe('E_REPLICA_NODE_ONE_HOST')
    const bad = await f.run(['replica', 'add', '--node', 'B!', '--json'])
    expect(bad.exitCode).toBe(2)
    expect((await instances()).map((i) => i.name)).toEqual(before)
  })

  it('HAProxy with templates/haproxy.cfg routes writes to the primary, and to the new one after a switchover', async () => {
    writePort = await freePort()
    readPort = await freePort()
    const all = await instances()
    const cfgFile = path.join(f.projectDir, 'haproxy.cfg')
    writeFileSync(
      cfgFile,
      renderHaproxyCfg({
        servers: all.map((i) => ({ name: i.name, host: '127.0.0.1', port: i.port })),
        portOffset: offset,
        primaryBind: `127.0.0.1:${writePort}`,
        replicaBind: `127.0.0.1:${readPort}`,
        statsBind: `127.0.0.1:${await freePort()}`,
        checkInterval: '500ms',
        fall: 2,
        rise: 1,
      }),
    )
    const valid = spawnSync(HAPROXY, ['-c', '-f', cfgFile], { encoding: 'utf8' })
    expect(valid.status, valid.stdout + valid.stderr).toBe(0)
    haproxy = spawn(HAPROXY, ['-db', '-f', cfgFile], { stdio: 'ignore' })
    const p = all.find((i) => i.role === 'primary')!
    const r = all.find((i) => i.role === 'replica')!
    await waitFor('HAProxy to route writes to the primary', async () => (await through(writePort)) === p.port, 30_000)
    await waitFor('HAProxy to route reads to the replica', async () => (await through(readPort)) === r.port, 30_000)

    const sw = await f.run(['switchover', '--to', r.name, '--json'])
    expect(sw.exitCode, sw.stdout + sw.stderr).toBe(0)
    // HAProxy's checks follow /primary: the write port now reaches the old replica.
    // Until HAProxy's check marks the old primary down, both may be up in the write backend:
    // wait until several connections in a row reach the new primary only.
    await waitFor('HAProxy to route writes to the new primary only', async () => {
      for (let i = 0; i < 5; i++) if ((await through(writePort)) !== r.port) return false
      return true
    }, 60_000)
    const c = new pg.Client({ host: '127.0.0.1', port: writePort, user: 'postgres', password, database: 'postgres' })
    await c.connect()
    try {
      expect((await c.query<{ rec: boolean }>('select pg_is_in_recovery() as rec')).rows[0]?.rec).toBe(false)
      await c.query('create table if not exists haproxy_probe (id int)')
    } finally {
      await c.end()
    }
  })
})
