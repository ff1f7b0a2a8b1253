import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { RealtimeClient, RealtimePostgresChangesPayload } from '@supabase/realtime-js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { waitFor } from '../helpers/wait.js'
import { client, createRealtimeFlock, Inbox, realtimeStatus, subscribed, token, waitStreaming, type RealtimeFlock } from '../helpers/realtime.js'

/**
 * kill -9 of the kernel while a realtime-js client is subscribed: Postgres keeps serving, the
 * slot stays behind holding WAL. The next kernel finds the slot over realtime.slotMaxRetainedMB,
 * drops and re-creates it (never letting it fill the disk), and the client — reconnecting on its
 * own — gets changes again.
 */
describe('realtime across a kernel kill (chaos)', () => {
  let rf: RealtimeFlock
  let c: RealtimeClient | undefined
  beforeAll(async () => {
    rf = await createRealtimeFlock('  slotMaxRetainedMB: 16\n')
    await rf.sql(`create table public.ticks (id int primary key, pad text); alter publication magflock_realtime add table public.ticks`)
  })
  afterAll(async () => {
    await c?.disconnect().catch(() => undefined)
    await rf?.f.destroy()
  })

  it('drops the slot that passed its cap while the kernel was dead, and the client resumes on the next kernel', async () => {
    c = client(rf.url, await token(rf.f, 'postgres'))
    const changes = new Inbox<RealtimePostgresChangesPayload<{ id: number }>>()
    const ch = c.channel('ticks').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'ticks' }, changes.push)
    expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    await rf.sql('insert into ticks values (1)')
    await changes.next(1)

    const info = await readKernelInfo(rf.f.layout)
    process.kill(info!.pid, 'SIGKILL')
    // ~40 MB of WAL the dead kernel's slot holds back (cap: 16 MiB).
    await rf.sql(`insert into ticks select g, repeat('x', 2000) from generate_series(1000, 20999) g; select pg_switch_wal()`)
    const held = await rf.sql<{ retained: string }>(`select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as retained from pg_replication_slots where slot_name = 'magflock_realtime'`)
    expect(Number(held[0]?.retained)).toBeGreaterThan(16 * 1024 * 1024)

    const r = await rf.f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const s = await waitStreaming(rf.f)
    expect(s.stream?.slotRecreations).toBeGreaterThanOrEqual(1)
    const after = await rf.sql<{ retained: string }>(`select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as retained from pg_replication_slots where slot_name = 'magflock_realtime'`)
    expect(Number(after[0]?.retained)).toBeLessThan(16 * 1024 * 1024)

    // realtime-js reconnects and re-joins by itself; a change committed after that arrives.
    await waitFor('the client to re-join the next kernel', async () => (await realtimeStatus(rf.f)).postgresSubscriptions >= 1)
    await rf.sql('insert into ticks values (2)')
    await waitFor('the change after the kernel restart', async () => changes.items.some((p) => (p.new as { id: number }).id === 2), 60_000)
  })

  it('answers a crowd of clients joining the next kernel at once, from one connection pool', async () => {
    // Every client of a killed kernel reconnects and joins at once. Each postgres_changes join
    // looks up its role: the lookups share one pool (it used to be one pool per concurrent
    // first join, past max_connections, and the joins were refused).
    await c?.disconnect()
    c = undefined
    const info = await readKernelInfo(rf.f.layout)
    process.kill(info!.pid, 'SIGKILL')
    const r = await rf.f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    await waitStreaming(rf.f)
    const tok = await token(rf.f, 'postgres')
    const N = 300
    const socks: WebSocket[] = []
    try {
      // Every socket open first, then every join sent in one go: they reach the kernel together.
      await Promise.all(
        Array.from({ length: N }, () => {
          const ws = new WebSocket(`${rf.url}/websocket?apikey=${tok}&vsn=2.0.0`)
          socks.push(ws)
          return new Promise<void>((resolve, reject) => {
            ws.on('error', reject)
            ws.on('open', () => resolve())
          })
        }),
      )
      const replies = socks.map(
        (ws) =>
          new Promise<string>((resolve) =>
            ws.on('message', (data) => {
              const [, , , event, payload] = JSON.parse(data.toString()) as [unknown, unknown, unknown, string, { status: string; response: unknown }]
              if (event === 'phx_reply') resolve(payload.status === 'ok' ? 'ok' : JSON.stringify(payload.response))
            }),
          ),
      )
      // Connections opened from here on (the killed kernel's pool may linger a moment).
      const since = (await rf.sql<{ t: string }>('select clock_timestamp()::text as t'))[0]!.t
      socks.forEach((ws, i) => ws.send(JSON.stringify(['1', '1', `realtime:crowd${i}`, 'phx_join', { config: { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'ticks' }] } }])))
      const answers = await Promise.all(replies)
      expect(answers.filter((x) => x !== 'ok')).toEqual([])
      const conns = await rf.sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = 'magflock-realtime-rls' and backend_start >= '${since}'`)
      expect(conns[0]!.n).toBeLessThanOrEqual(4)
    } finally {
      for (const ws of socks) ws.terminate()
    }
  })
})
