import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { REALTIME_SLOT } from '../../src/realtime/names.js'
import type { StatusOutput } from '../../src/api/core.js'

// realtime.enabled=false (the default): the realtime component loads none of its
// implementation and does not connect to Postgres unless the primary's data dir holds a
// leftover realtime slot, which it drops (nothing may hold WAL back for a disabled feature).
// Drives the built CLI and the real kernel.

describe('realtime disabled', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stderr).toBe(0)
  })
  afterAll(async () => {
    await f?.destroy()
  })

  const realtime = async () => {
    const st = await f.run<StatusOutput>(['status', '--json'])
    expect(st.exitCode, st.stderr).toBe(0)
    return (st.json as { data: StatusOutput }).data.components.find((c) => c.name === 'realtime')
  }
  const slots = async () => {
    const c = await f.connect()
    try {
      return (await c.query<{ n: number }>('select count(*)::int as n from pg_replication_slots where slot_name = $1', [REALTIME_SLOT])).rows[0]?.n
    } finally {
      await c.end()
    }
  }

  it('idles without a slot, and the next boot drops a leftover one', async () => {
    expect(await realtime()).toMatchObject({ state: 'running', healthy: true, detail: 'disabled (realtime.enabled=false)' })
    // A slot left by a flock that ran realtime before (a physical one holds WAL back the same way).
    const c = await f.connect()
    try {
      await c.query('select pg_create_physical_replication_slot($1, true)', [REALTIME_SLOT])
    } finally {
      await c.end()
    }
    expect(await slots()).toBe(1)
    expect((await f.run(['down', '--json'])).exitCode).toBe(0)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stderr).toBe(0)
    expect((await realtime())?.detail).toBe('disabled (realtime.enabled=false); dropped the leftover realtime slot')
    expect(await slots()).toBe(0)
  })
})
