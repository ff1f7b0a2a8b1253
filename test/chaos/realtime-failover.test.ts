import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RealtimeClient, RealtimePostgresChangesPayload } from '@supabase/realtime-js'
import type { ReplicationStatus } from '../../src/api/replication.js'
import { waitFor } from '../helpers/wait.js'
import { client, createRealtimeFlock, Inbox, subscribed, token, waitStreaming, type RealtimeFlock } from '../helpers/realtime.js'

/**
 * kill -9 of the primary while a realtime-js client is subscribed, then a failover: the change
 * stream follows the new primary, re-creates its slot there (PostgreSQL 15 has no failover
 * slots), tells the channel that changes may have been missed, and new changes flow again.
 */
describe('realtime across a failover (chaos)', () => {
  let rf: RealtimeFlock
  let c: RealtimeClient | undefined
  beforeAll(async () => {
    rf = await createRealtimeFlock()
    const r = await rf.f.run(['replica', 'add', 'r1', '--json'])
    if (r.exitCode !== 0) throw new Error(`replica add failed: ${r.stdout} ${r.stderr}`)
    await rf.sql(`create table public.ticks (id int primary key); alter publication magflock_realtime add table public.ticks`)
  })
  afterAll(async () => {
    await c?.disconnect().catch(() => undefined)
    await rf?.f.destroy()
  })

  it('streams again from the promoted replica after kill -9 of the primary', { timeout: 120_000 }, async () => {
    c = client(rf.url, await token(rf.f, 'postgres'))
    const changes = new Inbox<RealtimePostgresChangesPayload<{ id: number }>>()
    const system = new Inbox<{ status: string; message: string }>()
    const ch = c.channel('ticks').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'ticks' }, changes.push).on('system', {}, system.push)
    expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    await rf.sql('insert into ticks values (1)')
    await changes.next(1)

    const list = async () => (await rf.f.run<ReplicationStatus>(['replica', 'list', '--json'])).json
    // The monitor picks a replica by what it saw it replay: wait until r1 has replayed WAL, or a
    // kill right after the add can leave it with nothing observed ("has not replayed any WAL").
    await waitFor('r1 streaming with WAL replayed', async () => {
      const l = await list()
      const r1 = l?.ok ? l.data.members.find((m) => m.name === 'r1') : undefined
      return r1?.state === 'streaming' && r1.replayLsn !== null
    })
    const before = await list()
    const old = before?.ok ? before.data.members.find((m) => m.role === 'primary') : undefined
    expect(old).toBeDefined()
    const pid = await rf.f.postmasterPid(old!.name)
    expect(pid).toBeGreaterThan(0)
    process.kill(pid!, 'SIGKILL')
    // The supervisor may already have restarted the old primary in place; the forced failover
    // must still go through (the monitor asks r1 itself instead of the fresh walsender row,
    // which has no replay position until r1's first feedback).
    const fo = await rf.f.run(['failover', '--to', 'r1', '--force', '--json'])
    expect(fo.exitCode, fo.stdout + fo.stderr).toBe(0)
    const after = await list()
    const promoted = after?.ok ? after.data.members.find((m) => m.role === 'primary') : undefined
    expect(promoted?.name).toBe('r1')

    await waitStreaming(rf.f, 'r1')
    await waitFor('the gap notice', async () => system.items.some((s) => /ChangesMayHaveBeenMissed/.test(s.message)))
    await rf.sql('insert into ticks values (2)', promoted!.port)
    const got = await changes.next(2, 'changes after the failover', 60_000)
    expect(got.map((p) => (p.new as { id: number }).id)).toEqual([1, 2])
  })
})
