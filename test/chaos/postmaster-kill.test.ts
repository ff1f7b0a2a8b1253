import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initInstance, pgIsReady, type InstanceSpec } from '../../src/postgres/instance.js'
import { isProcessAlive, readPostmasterPid } from '../../src/postgres/pidfile.js'
import { InstanceSupervisor } from '../../src/postgres/supervisor.js'
import { recordingEvents, silentLog, until } from '../integration/postgres/events.js'
import { killLeftovers, query, testSpec } from '../integration/postgres/spec.js'
import pg from 'pg'

const PASSWORD = 'chaos-pw'

describe('chaos: kill -9 of the postmaster', () => {
  let spec: InstanceSpec
  let cleanup: () => void
  let sup: InstanceSupervisor

  beforeAll(async () => {
    const t = await testSpec()
    spec = t.spec
    cleanup = t.cleanup
    await initInstance(spec, PASSWORD)
  })

  afterAll(async () => {
    await sup?.stop({ keepRunning: false }).catch(() => undefined)
    await killLeftovers(spec.dataDir)
    cleanup()
  })

  it('publishes instance.crashed, restarts Postgres under a new pid, and committed data survives', async () => {
    const events = recordingEvents()
    let restartedCalls = 0
    sup = new InstanceSupervisor(spec, {
      log: silentLog,
      events,
      restart: { policy: 'always', initialBackoffMs: 50, maxRestarts: 5, windowMs: 60_000 },
      onRestart: () => restartedCalls++,
    })
    await sup.start()
    const before = sup.status()
    expect(before.state).toBe('running')
    const oldPid = before.pid!
    await query(spec, PASSWORD, 'create table chaos(id int primary key, v text)')
    await query(spec, PASSWORD, "insert into chaos select g, 'row ' || g from generate_series(1, 5000) g")

    // A client holding a backend open across the kill: its orphaned backend must not block the restart.
    const client = new pg.Client({ host: spec.host, port: spec.port, user: spec.superuser, password: PASSWORD, database: 'postgres' })
    client.on('error', () => undefined)
    await client.connect()
    // An open transaction with a row in it when the postmaster dies: the row must be gone after.
    // (Parameters need the extended protocol, one statement per query: BEGIN goes on its own.)
    await client.query('begin')
    await client.query('insert into chaos values (999999, $1)', ['uncommitted'])
    const inside = await client.query<{ n: string }>('select count(*) as n from chaos where id = 999999')
    expect(inside.rows[0]?.n).toBe('1')

    process.kill(oldPid, 'SIGKILL')
    await until(() => events.list.some((e) => e.type === 'instance.restarted'), 'instance.restarted')
    await client.end().catch(() => undefined)

    const crashed = events.list.find((e) => e.type === 'instance.crashed')
    expect(crashed?.payload).toMatchObject({ instance: spec.name, pid: oldPid, signal: 'SIGKILL' })
    const restarted = events.list.find((e) => e.type === 'instance.restarted')!
    expect(restarted.payload).toMatchObject({ instance: spec.name, attempt: 1 })
    const newPid = restarted.payload.pid as number
    expect(newPid).not.toBe(oldPid)
    expect(events.list.map((e) => e.type)).toEqual(['instance.crashed', 'instance.restarted'])

    expect(await isProcessAlive(oldPid)).toBe(false)
    expect((await readPostmasterPid(spec.dataDir))?.pid).toBe(newPid)
    expect(await pgIsReady(spec)).toBe('running')
    const r = await query<{ n: string; s: string }>(spec, PASSWORD, 'select count(*) as n, sum(id) as s from chaos')
    expect(r.rows[0]).toEqual({ n: '5000', s: String((5000 * 5001) / 2) })
    const lost = await query<{ n: string }>(spec, PASSWORD, 'select count(*) as n from chaos where id = 999999')
    expect(lost.rows[0]?.n).toBe('0') // the uncommitted row did not survive the crash
    expect(sup.status()).toMatchObject({ state: 'running', pid: newPid, restarts: 1 })
    expect(restartedCalls).toBe(1)
    expect(sup.health()).toMatchObject({ live: true, ready: true })
  })
})
