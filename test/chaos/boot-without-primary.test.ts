import { existsSync, promises as fsp } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort } from '../../src/platform/ports.js'
import { readPostmasterPid } from '../../src/postgres/pidfile.js'
import { createFlock, createReplicatedFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'
import { query } from '../helpers/sql.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'

/**
 * The node dies while no kernel runs (kernel stopped or killed before it could fence): the
 * next kernel must not refuse to boot on the dead primary (then nothing could fail over) and
 * must never initdb an empty database where a provisioned primary's data used to be.
 */

describe('chaos: the primary dies while no kernel runs', () => {
  let f: Flock | undefined
  afterEach(async () => {
    await f?.destroy()
    f = undefined
  })

  it('the next kernel boots without it and promotes the replica; the old primary stays fenced until rejoined', async () => {
    const rf = await createReplicatedFlock()
    f = rf.f
    const fl = f
    const { pgPort, password, r1Port, list } = rf
    await query(pgPort, password, 'create table bw(seq int primary key); insert into bw select generate_series(1, 50)')
    await waitFor('r1 to replay the rows', async () => (await query<{ n: number }>(r1Port, password, 'select count(*)::int as n from bw'))[0]?.n === 50)

    // The kernel goes away (Postgres keeps running), then the node dies: kill -9 of the
    // postmaster and a data dir that cannot start.
    expect((await fl.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    const dataDir = fl.layout.dataDir(FIRST_INSTANCE)
    const pm = await readPostmasterPid(dataDir)
    process.kill(pm!.pid, 'SIGKILL')
    await fsp.rename(path.join(dataDir, 'global', 'pg_control'), path.join(dataDir, 'global', 'pg_control.gone'))

    const again = await fl.run(['kernel', 'start', '--json'])
    expect(again.exitCode, again.stdout + again.stderr).toBe(0)
    const done = await waitFor('r1 to be promoted', async () => {
      const l = await list()
      return l.members.some((m) => m.name === 'r1' && m.role === 'primary') ? l : undefined
    })
    expect(done.lastFailover).toMatchObject({ from: FIRST_INSTANCE, to: 'r1', automatic: true })
    expect((await query<{ r: boolean }>(r1Port, password, 'select pg_is_in_recovery() as r'))[0]?.r).toBe(false)
    await query(r1Port, password, 'insert into bw values (51)')
    expect((await query<{ n: number }>(r1Port, password, 'select count(*)::int as n from bw'))[0]?.n).toBe(51)
    // The dead node is fenced: it can never come back as a second primary on its own.
    expect(existsSync(path.join(fl.layout.instanceDir(FIRST_INSTANCE), 'fence.json'))).toBe(true)
    expect(existsSync(path.join(dataDir, 'standby.signal'))).toBe(true)

    // The node is repaired; the operator rejoins it as a replica of r1.
    await fsp.rename(path.join(dataDir, 'global', 'pg_control.gone'), path.join(dataDir, 'global', 'pg_control'))
    const rejoin = await fl.run(['replica', 'rejoin', FIRST_INSTANCE, '--json'])
    expect(rejoin.exitCode, rejoin.stdout + rejoin.stderr).toBe(0)
    await waitFor('the old primary to replay the new write', async () => (await query<{ n: number }>(pgPort, password, 'select count(*)::int as n from bw'))[0]?.n === 51)
  }, 240_000)

  it('never initdbs an empty database where a provisioned primary lost its data dir', async () => {
    const pgPort = await freePort()
    f = await createFlock({ yaml: `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${await freePort()}\n` })
    const fl = f
    expect((await fl.run(['up', '--json'])).exitCode).toBe(0)
    expect((await fl.run(['down', '--json'])).exitCode).toBe(0)
    const dataDir = fl.layout.dataDir(FIRST_INSTANCE)
    await fsp.rename(dataDir, `${dataDir}.lost`)

    const up = await fl.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(11)
    expect(up.json?.ok === false && up.json.error.code).toBe('E_INSTANCE_DATA_MISSING')
    expect(existsSync(dataDir)).toBe(false)
    expect(existsSync(`${dataDir}.initializing`)).toBe(false)

    // With the data dir back, the same flock comes up with its data.
    await fsp.rename(`${dataDir}.lost`, dataDir)
    expect((await fl.run(['up', '--json'])).exitCode).toBe(0)
  }, 120_000)
})
