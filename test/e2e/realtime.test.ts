import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import type { RealtimeClient, RealtimePostgresChangesPayload } from '@supabase/realtime-js'
import type { Flock } from '../helpers/flock.js'
import { NODE, ROOT } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { client, createRealtimeFlock, Inbox, realtimeStatus, subscribed, token, type RealtimeFlock } from '../helpers/realtime.js'
import { signJwt } from '../../src/realtime/jwt.js'

type Row = { id: number; name: string; n: number | null; tags: string[] | null; doc: unknown }
type Change = RealtimePostgresChangesPayload<Row>

/**
 * The acceptance test of issue 14: the published @supabase/realtime-js client, unmodified,
 * against a kernel started by the built CLI with realtime enabled.
 */
describe('realtime (MagWS) with @supabase/realtime-js', () => {
  let f: Flock
  let url: string
  let sql: RealtimeFlock['sql']
  const clients: RealtimeClient[] = []
  const open = (apikey: string) => {
    const c = client(url, apikey)
    clients.push(c)
    return c
  }

  beforeAll(async () => {
    ;({ f, url, sql } = await createRealtimeFlock())
    await sql(
      `create table public.items (id int primary key, name text not null, n int, tags text[], doc jsonb);
       alter table public.items replica identity full;
       create table public.notes (id int primary key, owner text not null, body text);
       alter table public.notes enable row level security;
       create policy own_notes on public.notes for select using (owner = current_setting('request.jwt.claims', true)::json->>'sub');
       create role app_user nologin; create role outsider nologin;
       grant select on public.notes to app_user;
       alter publication magflock_realtime add table public.items, public.notes;`,
    )
  })
  afterAll(async () => {
    for (const c of clients) await c.disconnect().catch(() => undefined)
    await f?.destroy()
  })

  it('sets wal_level = logical and streams from the primary', async () => {
    const rows = await sql<{ wal_level: string }>('show wal_level')
    expect(rows[0]?.wal_level).toBe('logical')
    const s = await realtimeStatus(f)
    expect(s).toMatchObject({ enabled: true, stream: { connected: true, slot: 'magflock_realtime', publication: 'magflock_realtime' } })
    // npm run build compiled the native writer (cc is on CI's machine), and the kernel uses it.
    expect(s.writer).toEqual({ native: true, detail: 'native socket writer (dist/native/socket-writes.node)', yieldsCpu: true })
    const text = await f.run(['realtime', 'status'])
    expect(text.stdout).toMatch(/^writer: +native socket writer \(dist\/native\/socket-writes\.node\); yields the CPU between flush slices$/m)
  })

  it('delivers INSERT, UPDATE and DELETE made through SQL with the Supabase payload shape', async () => {
    const c = open(await token(f, 'postgres'))
    const inbox = new Inbox<Change>()
    const ch = c.channel('items-all').on('postgres_changes', { event: '*', schema: 'public', table: 'items' }, inbox.push)
    expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    await sql(`insert into items values (1, 'one', 5, '{a,b}', '{"k": [1, 2]}')`)
    await sql(`update items set name = 'uno', n = 6 where id = 1`)
    await sql(`delete from items where id = 1`)
    const [ins, upd, del] = await inbox.next(3)
    expect(ins).toMatchObject({ schema: 'public', table: 'items', eventType: 'INSERT', new: { id: 1, name: 'one', n: 5, tags: ['a', 'b'], doc: { k: [1, 2] } }, old: {}, errors: null })
    expect(Date.parse(ins!.commit_timestamp)).toBeGreaterThan(Date.now() - 120_000)
    expect(upd).toMatchObject({ eventType: 'UPDATE', new: { id: 1, name: 'uno', n: 6 }, old: { id: 1, name: 'one', n: 5 } })
    expect(del).toMatchObject({ eventType: 'DELETE', new: {}, old: { id: 1, name: 'uno' } })
    await c.removeChannel(ch)
  })

  it('applies event and column filters (eq, neq, lt, lte, gt, gte, in)', async () => {
    const c = open(await token(f, 'postgres'))
    const cases: Array<[string, number[]]> = [
      ['id=eq.12', [12]],
      ['id=neq.12', [11, 13, 14]],
      ['n=lt.20', [11]],
      ['n=lte.20', [11, 12]],
      ['n=gt.30', [14]],
      ['n=gte.30', [13, 14]],
      ['name=in.(b,"d")', [12, 14]],
    ]
    const boxes = cases.map(() => new Inbox<Change>())
    const ch = cases.reduce(
      (acc, [filter], i) => acc.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'items', filter }, boxes[i]!.push),
      c.channel('items-filtered'),
    )
    const updates = new Inbox<Change>()
    ch.on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'items' }, updates.push)
    expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    await sql(`insert into items (id, name, n) values (11, 'a', 10), (12, 'b', 20), (13, 'c', 30), (14, 'd', 40)`)
    await sql(`update items set n = 41 where id = 14`)
    // The UPDATE commits after the INSERTs, so once it arrived every INSERT has been delivered.
    await updates.next(1)
    cases.forEach(([filter, ids], i) => {
      expect(boxes[i]!.items.map((p) => (p.new as Row).id).sort(), filter).toEqual(ids)
    })
    await c.removeChannel(ch)
  })

  it('exchanges a broadcast between two clients (ack; self off by default)', async () => {
    const t = await token(f, 'anon')
    const a = open(t)
    const b = open(t)
    const gotA = new Inbox<unknown>()
    const gotB = new Inbox<unknown>()
    const chA = a.channel('room1', { config: { broadcast: { ack: true } } }).on('broadcast', { event: 'hello' }, gotA.push)
    const chB = b.channel('room1', { config: { broadcast: { self: true } } }).on('broadcast', { event: 'hello' }, gotB.push)
    expect((await subscribed(chA)).status).toBe('SUBSCRIBED')
    expect((await subscribed(chB)).status).toBe('SUBSCRIBED')
    expect(await chA.send({ type: 'broadcast', event: 'hello', payload: { from: 'a', n: 1 } })).toBe('ok')
    await chB.send({ type: 'broadcast', event: 'hello', payload: { from: 'b' } })
    const [m1, m2] = await gotB.next(2)
    expect(m1).toMatchObject({ event: 'hello', payload: { from: 'a', n: 1 } })
    expect(m2).toMatchObject({ event: 'hello', payload: { from: 'b' } }) // self: true
    const [fromB] = await gotA.next(1)
    expect(fromB).toMatchObject({ payload: { from: 'b' } })
    expect(gotA.items).toHaveLength(1) // self: false — a never hears its own message
  })

  it('syncs presence and sends a leave when a client socket is killed', async () => {
    const t = await token(f, 'anon')
    const a = open(t)
    const joins = new Inbox<{ key: string }>()
    const leaves = new Inbox<{ key: string }>()
    const chA = a.channel('lobby', { config: { presence: { key: 'alice' } } })
    chA.on('presence', { event: 'join' }, joins.push).on('presence', { event: 'leave' }, leaves.push)
    expect((await subscribed(chA)).status).toBe('SUBSCRIBED')
    expect(await chA.track({ status: 'here' })).toBe('ok')
    // A second client in its own process, killed with SIGKILL once tracked.
    const script = `
      import { RealtimeClient } from '@supabase/realtime-js'
      const c = new RealtimeClient(${JSON.stringify(url)}, { params: { apikey: ${JSON.stringify(t)} } })
      const ch = c.channel('lobby', { config: { presence: { key: 'bob' } } })
      ch.subscribe(async (s) => { if (s === 'SUBSCRIBED') { await ch.track({ status: 'bob here' }); console.log('tracked') } })
      setInterval(() => {}, 1000)`
    const child = spawn(NODE, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await waitFor('bob to track', async () => chA.presenceState().bob !== undefined)
      expect(chA.presenceState().bob?.[0]).toMatchObject({ status: 'bob here' })
      expect(chA.presenceState().alice?.[0]).toMatchObject({ status: 'here' })
      child.kill('SIGKILL')
      await waitFor('bob to leave', async () => chA.presenceState().bob === undefined)
      expect(leaves.items.some((l) => l.key === 'bob')).toBe(true)
      expect(chA.presenceState().alice).toBeDefined()
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('delivers a row only to subscribers whose role and claims may SELECT it (RLS)', async () => {
    const alice = open(await token(f, 'app_user', { sub: 'alice' }))
    const bob = open(await token(f, 'app_user', { sub: 'bob' }))
    const outsider = open(await token(f, 'outsider', { sub: 'alice' }))
    const boxes = { alice: new Inbox<Change>(), bob: new Inbox<Change>(), outsider: new Inbox<Change>() }
    for (const [name, c] of [['alice', alice], ['bob', bob], ['outsider', outsider]] as const) {
      const ch = c.channel(`notes-${name}`).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'notes' }, boxes[name].push)
      expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    }
    await sql(`insert into notes values (1, 'alice', 'for alice')`)
    await sql(`insert into notes values (2, 'bob', 'for bob')`)
    const [a1] = await boxes.alice.next(1)
    const [b1] = await boxes.bob.next(1)
    expect(a1?.new).toMatchObject({ id: 1, owner: 'alice' })
    // Changes arrive in commit order: bob got row 2, so row 1 was withheld from him.
    expect(b1?.new).toMatchObject({ id: 2, owner: 'bob' })
    expect(boxes.bob.items).toHaveLength(1)
    // Alice's next row: she keeps getting exactly her own rows, in order.
    await sql(`insert into notes values (3, 'alice', 'again')`)
    await boxes.alice.next(2)
    expect(boxes.alice.items.map((p) => (p.new as Row).id)).toEqual([1, 3])
    expect(boxes.outsider.items).toHaveLength(0) // no SELECT grant: nothing, whatever the claims
  })

  it('sends a DELETE on an RLS table to roles with SELECT, with only the key to RLS-bound ones (as Supabase)', async () => {
    await sql(`create table public.diary (id int primary key, owner text not null, body text);
      alter table public.diary replica identity full;
      alter table public.diary enable row level security;
      create policy own_diary on public.diary for select using (owner = current_setting('request.jwt.claims', true)::json->>'sub');
      grant select on public.diary to app_user;
      alter publication magflock_realtime add table public.diary;
      insert into diary values (1, 'bob', 'secret of bob'), (2, 'alice', 'alice writes');`)
    const subs = { alice: await token(f, 'app_user', { sub: 'alice' }), outsider: await token(f, 'outsider', { sub: 'bob' }), admin: await token(f, 'postgres') }
    const boxes = { alice: new Inbox<Change>(), aliceFiltered: new Inbox<Change>(), outsider: new Inbox<Change>(), admin: new Inbox<Change>() }
    for (const name of ['alice', 'outsider', 'admin'] as const) {
      const ch = open(subs[name]).channel(`diary-${name}`).on('postgres_changes', { event: 'DELETE', schema: 'public', table: 'diary' }, boxes[name].push)
      expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    }
    // DELETEs pass every filter (as in Supabase): receiving one must not tell what the row held.
    const filtered = open(subs.alice).channel('diary-alice-f').on('postgres_changes', { event: 'DELETE', schema: 'public', table: 'diary', filter: 'owner=eq.nobody' }, boxes.aliceFiltered.push)
    expect((await subscribed(filtered)).status).toBe('SUBSCRIBED')
    await sql(`delete from diary where id = 1`)
    const [adminDel] = await boxes.admin.next(1)
    const [aliceDel] = await boxes.alice.next(1)
    const [aliceF] = await boxes.aliceFiltered.next(1)
    // Superuser (bypasses RLS): the whole old row (REPLICA IDENTITY FULL).
    expect(adminDel?.old).toEqual({ id: 1, owner: 'bob', body: 'secret of bob' })
    // RLS-bound: the DELETE of a row it could not see arrives, with the primary key only.
    expect(aliceDel).toMatchObject({ eventType: 'DELETE', old: { id: 1 } })
    expect(Object.keys(aliceDel!.old)).toEqual(['id'])
    expect(aliceF?.old).toEqual({ id: 1 })
    // No SELECT grant: nothing. Its DELETE would have come before the marker's INSERT.
    const marker = new Inbox<Change>()
    const mch = open(subs.admin).channel('diary-marker').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'diary' }, marker.push)
    expect((await subscribed(mch)).status).toBe('SUBSCRIBED')
    await sql(`insert into diary values (3, 'alice', 'marker')`)
    await marker.next(1)
    expect(boxes.outsider.items).toHaveLength(0)
  })

  it('refuses forged and expired tokens, at connect and at join', async () => {
    const secret = await f.run<{ value: string }>(['secrets', 'get', 'realtime.jwt.secret', '--reveal', '--json'])
    expect(secret.json?.ok).toBe(true)
    const real = secret.json?.ok ? secret.json.data.value : ''
    const now = Math.floor(Date.now() / 1000)
    const forged = signJwt({ role: 'postgres', exp: now + 3600 }, 'not-the-flock-secret')
    const expired = signJwt({ role: 'postgres', exp: now - 10 }, real)
    for (const [bad, status] of [[forged, 403], [expired, 403], ['garbage', 403]] as const) {
      const refused = await upgradeStatus(`${url}/websocket?apikey=${encodeURIComponent(bad)}&vsn=2.0.0`)
      expect(refused, bad.slice(0, 10)).toBe(status)
    }
    expect(await upgradeStatus(`${url}/websocket?vsn=2.0.0`)).toBe(401)
    // A good socket token, then a join carrying a bad access_token: the channel is refused.
    const c = open(await token(f, 'anon'))
    for (const bad of [forged, expired]) {
      await c.setAuth(bad)
      const r = await subscribed(c.channel(`guarded-${bad.length}-${Math.random()}`))
      expect(r.status).toBe('CHANNEL_ERROR')
      expect(r.err?.message ?? '').toMatch(/JWT|expired/i)
    }
  })

  it('authorizes private channels by the token claim `topics`', async () => {
    const allowed = open(await token(f, 'anon', { topics: ['vip:*'] }))
    const denied = open(await token(f, 'anon', { topics: ['other'] }))
    expect((await subscribed(allowed.channel('vip:1', { config: { private: true } }))).status).toBe('SUBSCRIBED')
    const r = await subscribed(denied.channel('vip:1', { config: { private: true } }))
    expect(r.status).toBe('CHANNEL_ERROR')
    expect(r.err?.message).toMatch(/permissions/)
  })

  it('answers malformed frames, unknown topics and oversize messages with protocol errors', async () => {
    const t = await token(f, 'anon')
    const ws = await rawSocket(`${url}/websocket?apikey=${t}&vsn=2.0.0`)
    const replies: unknown[] = []
    ws.addEventListener('message', (e) => replies.push(JSON.parse(String(e.data))))
    ws.send(JSON.stringify(['1', '1', 'nope', 'phx_join', {}]))
    ws.send(JSON.stringify([null, '2', 'realtime:never-joined', 'broadcast', { type: 'broadcast', event: 'x' }]))
    ws.send(JSON.stringify([null, '3', 'phoenix', 'heartbeat', {}]))
    await waitFor('three replies', async () => replies.length >= 3)
    expect(replies[0]).toEqual(['1', '1', 'nope', 'phx_reply', { status: 'error', response: { reason: expect.stringMatching(/UnknownTopic/) } }])
    expect(replies[1]).toEqual([null, '2', 'realtime:never-joined', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }])
    expect(replies[2]).toEqual([null, '3', 'phoenix', 'phx_reply', { status: 'ok', response: {} }])
    const closed = new Promise<number>((r) => ws.addEventListener('close', (e) => r(e.code)))
    ws.send('{this is not json')
    expect(await closed).toBe(1007)

    const big = await rawSocket(`${url}/websocket?apikey=${t}&vsn=2.0.0`)
    const bigClosed = new Promise<number>((r) => big.addEventListener('close', (e) => r(e.code)))
    big.send(JSON.stringify([null, '1', 'phoenix', 'heartbeat', { pad: 'x'.repeat(70_000) }]))
    expect(await bigClosed).toBe(1009)
    expect((await realtimeStatus(f)).protocolErrors).toBeGreaterThanOrEqual(1)
  })

  it('drops a client that stops reading, with a clear close reason, and keeps serving the others', async () => {
    const t = await token(f, 'anon')
    const { default: WS } = await import('ws')
    const slow = new WS(`${url}/websocket?apikey=${t}&vsn=2.0.0`)
    await new Promise((r) => slow.once('open', r))
    const closed = new Promise<{ code: number; reason: string }>((r) => slow.once('close', (code, reason) => r({ code, reason: reason.toString() })))
    slow.send(JSON.stringify(['1', '1', 'realtime:firehose', 'phx_join', { config: {} }]))
    await new Promise((r) => slow.once('message', r))
    // The client stops reading: its socket is paused, so the kernel's send buffer fills up.
    ;(slow as unknown as { _socket: { pause(): void } })._socket.pause()
    const sender = open(t)
    const ch = sender.channel('firehose')
    expect((await subscribed(ch)).status).toBe('SUBSCRIBED')
    const chunk = 'x'.repeat(60_000)
    const before = (await realtimeStatus(f)).droppedSlowConsumers
    let sent = 0
    await waitFor('the slow client to be dropped', async () => {
      for (let i = 0; i < 50; i++, sent++) await ch.send({ type: 'broadcast', event: 'blob', payload: { chunk } })
      return (await realtimeStatus(f)).droppedSlowConsumers > before
    }, 120_000, 10)
    expect(sent).toBeLessThan(5_000) // ≈ 300 MB: the cap (8 MiB) was hit long before memory grew
    ;(slow as unknown as { _socket: { resume(): void } })._socket.resume()
    const c = await closed
    expect([1008, 1006]).toContain(c.code) // 1006 when the socket was destroyed before the close frame got through
    if (c.code === 1008) expect(c.reason).toMatch(/slow consumer/)
    // The sender's socket still works.
    expect(await ch.send({ type: 'broadcast', event: 'after', payload: {} })).toBe('ok')
  })

  it('keeps memory bounded under 10k joins in a loop (one connection, channel cap)', async () => {
    const t = await token(f, 'anon')
    const ws = await rawSocket(`${url}/websocket?apikey=${t}&vsn=2.0.0`)
    let errors = 0
    let oks = 0
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(String(e.data)) as [unknown, unknown, string, string, { status?: string }]
      if (m[3] !== 'phx_reply') return
      if (m[4].status === 'ok') oks++
      else errors++
    })
    for (let i = 0; i < 10_000; i++) ws.send(JSON.stringify([String(i), String(i), `realtime:loop-${i}`, 'phx_join', { config: {} }]))
    await waitFor('10k join replies', async () => oks + errors >= 10_000)
    expect(oks).toBe(100) // realtime.maxChannelsPerClient
    expect(errors).toBe(9_900)
    const s = await realtimeStatus(f)
    expect(s.channels).toBeLessThan(200 + 10)
    ws.close()
  })
})

async function upgradeStatus(u: string): Promise<number> {
  const http = await import('node:http')
  const url = new URL(u.replace(/^ws/, 'http'))
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': Buffer.alloc(16, 1).toString('base64') } })
    req.on('response', (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('upgrade', (_res, socket) => {
      socket.destroy()
      resolve(101)
    })
    req.on('error', reject)
    req.end()
  })
}

function rawSocket(u: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u)
    ws.addEventListener('open', () => resolve(ws))
    ws.addEventListener('error', () => reject(new Error(`cannot connect to ${u}`)))
  })
}
