import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPostgres, type TestPostgres } from '../helpers/pg.js'
import { waitFor } from '../helpers/wait.js'
import { ChangeStream } from '../../src/realtime/stream.js'
import type { Change } from '../../src/realtime/change.js'

/**
 * The change stream against a real walsender: backpressure pauses the replication socket while
 * the hub's backlog is long (the stream no longer awaits each message), and nothing is lost or
 * reordered when it resumes.
 */
describe('realtime change stream (pgoutput from a real walsender)', () => {
  let db: TestPostgres
  let stream: ChangeStream | undefined
  beforeAll(async () => {
    db = await startTestPostgres({ conf: { wal_level: 'logical' }, replication: true })
    await db.query('create table public.t (id int primary key, pad text)')
  })
  afterAll(async () => {
    await stream?.stop()
    await db?.stop()
  })

  it('pauses while the backlog is long and then delivers every change in order', async () => {
    const got: number[] = []
    let release: (() => void) | undefined
    let gate: Promise<void> | undefined = new Promise<void>((r) => (release = r))
    let asked = 0
    stream = new ChangeStream({
      database: 'postgres',
      capBytes: 1 << 30,
      primary: async () => ({ name: 'p', conn: db.connection() }),
      onChange: (ch: Change) => got.push(Number(ch.record?.id)),
      onGap: () => undefined,
      backlog: () => {
        asked++
        return gate
      },
    })
    stream.start()
    await waitFor('the stream to connect', async () => stream!.status().connected)
    await db.query(`alter publication magflock_realtime add table public.t`)
    const N = 20000
    await db.query(`insert into t select g, repeat('x', 40) from generate_series(1, ${N}) g`)
    await waitFor('the first changes', async () => got.length > 0)
    // Paused: the count stops growing well short of N (only what was already read is decoded).
    let last = -1
    await waitFor('the stream to stall behind the backlog', async () => {
      const same = got.length === last
      last = got.length
      if (!same) await new Promise((r) => setTimeout(r, 300))
      return same
    })
    expect(got.length).toBeLessThan(N)
    expect(asked).toBeGreaterThan(0)
    gate = undefined
    release!()
    await waitFor(`all ${N} changes`, async () => got.length >= N, 60_000)
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i + 1))
  })
})
