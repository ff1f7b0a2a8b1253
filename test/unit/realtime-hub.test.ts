import { describe, expect, it, vi } from 'vitest'
import { EventEmitter } from 'node:events'
import type { WebSocket } from 'ws'
import { Hub, KEYS_ONLY, type HubDeps } from '../../src/realtime/hub.js'
import type { Change } from '../../src/realtime/change.js'
import type { Relation } from '../../src/realtime/pgoutput.js'

/** A stand-in for a server-side ws socket: what the hub writes lands in `frames` (decoded text). */
class FakeWs extends EventEmitter {
  readonly OPEN = 1
  readyState = 1
  /** As ws counts it: what its socket holds unsent (its sender queues nothing without deflate). */
  get bufferedAmount(): number {
    return this._socket.writableLength
  }
  set bufferedAmount(n: number) {
    this._socket.writableLength = n
  }
  /** Each socket write busy-waits this long (a loopback TCP write costs several µs). */
  writeCostMs = 0
  closed: { code: number; reason: string } | undefined
  readonly frames: unknown[] = []
  /** The buffers written to the socket, as written. */
  readonly writes: Buffer[] = []
  readonly _socket = {
    writableLength: 0,
    writable: true,
    write: (b: Buffer) => {
      for (const t = performance.now(); performance.now() - t < this.writeCostMs; );
      this.writes.push(b)
      let o = 0
      while (o < b.length) {
        let len = b[o + 1]!
        let head = 2
        if (len === 126) [len, head] = [b.readUInt16BE(o + 2), 4]
        else if (len === 127) [len, head] = [b.readUInt32BE(o + 6), 10]
        this.frames.push(JSON.parse(b.subarray(o + head, o + head + len).toString('utf8')))
        o += head + len
      }
      return true
    },
  }
  send(text: string): void {
    this.frames.push(JSON.parse(text))
  }
  close(code = 1005, reason = ''): void {
    this.closed ??= { code, reason }
    this.readyState = 3
  }
  terminate(): void {
    this.readyState = 3
  }
  in(msg: unknown): void {
    this.emit('message', Buffer.from(JSON.stringify(msg)), false)
  }
}

// REPLICA IDENTITY FULL: pgoutput flags every column as key; the catalog's primary key is id.
const rel: Relation = { oid: 7, schema: 'public', table: 'diary', replicaIdentity: 'f', primaryKey: ['id'], columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }, { name: 'owner', typeOid: 25, type: 'text', key: true }] }
const flush = () => new Promise((r) => setImmediate(r))

function hub(visible: (ch: Change, keys: string[]) => Set<string>, cached = false, maxBufferedBytes = 1 << 20): { hub: Hub; batches: number[]; delivered: number[] } {
  const batches: number[] = []
  const delivered: number[] = []
  const deps: HubDeps = {
    onDelivered: (n) => delivered.push(n),
    maxBufferedBytes,
    maxChannelsPerClient: 10,
    publication: 'p',
    verify: () => ({ ok: false, reason: 'malformed', message: 'no' }),
    visibleBatch: async (items) => {
      batches.push(items.length)
      return items.map((x) => visible(x.change, x.groups.map((g) => g.key)))
    },
    roleExists: async () => true,
    published: async () => true,
    ...(cached ? { visibleGroupsCached: (ch: Change, groups: Array<{ key: string }>) => visible(ch, groups.map((g) => g.key)) } : {}),
  }
  return { hub: new Hub(deps), batches, delivered }
}

async function join(h: Hub, role: string, sub: string, topic: string, binding: Record<string, unknown>): Promise<FakeWs> {
  const ws = new FakeWs()
  h.attach(ws as unknown as WebSocket, '2.0.0', { role, sub, exp: 2e9 })
  ws.in(['1', '1', `realtime:${topic}`, 'phx_join', { config: { postgres_changes: [{ schema: 'public', table: 'diary', ...binding }] } }])
  for (let i = 0; i < 50 && ws.frames.length < 2; i++) await flush()
  ws.frames.length = 0
  return ws
}

const changes = (ws: FakeWs) => ws.frames.filter((f) => (f as unknown[])[3] === 'postgres_changes').map((f) => ((f as unknown[])[4] as { data: { old_record: unknown; record: unknown } }).data)

describe('realtime hub: delivery of changes', () => {
  it('sends a DELETE on an RLS table with the key only to RLS-bound groups; DELETEs pass every filter', async () => {
    const { hub: h } = hub((ch, keys) => new Set(keys.flatMap((k) => (k.startsWith('app') ? [k, `${k}${KEYS_ONLY}`] : [k]))))
    const bound = await join(h, 'app', 'alice', 'a', { event: 'DELETE' })
    const filtered = await join(h, 'app', 'alice', 'b', { event: 'DELETE', filter: 'owner=eq.nobody' })
    const keyFiltered = await join(h, 'app', 'alice', 'c', { event: 'DELETE', filter: 'id=eq.2' })
    const admin = await join(h, 'postgres', 'x', 'd', { event: 'DELETE' })
    h.deliver({ type: 'DELETE', relation: rel, record: null, oldRecord: { id: '1', owner: 'bob' }, commitTime: Date.now() })
    for (let i = 0; i < 20; i++) await flush()
    expect(changes(admin).map((d) => d.old_record)).toEqual([{ id: 1, owner: 'bob' }])
    expect(changes(bound).map((d) => d.old_record)).toEqual([{ id: 1 }])
    expect(changes(filtered).map((d) => d.old_record)).toEqual([{ id: 1 }])
    expect(changes(keyFiltered).map((d) => d.old_record)).toEqual([{ id: 1 }])
  })

  it('checks queued changes in batches and delivers them in commit order', async () => {
    const { hub: h, batches } = hub((ch, keys) => (Number(ch.record!.id) % 2 === 0 ? new Set(keys) : new Set()))
    const ws = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    for (let id = 1; id <= 200; id++) h.deliver({ type: 'INSERT', relation: rel, record: { id: String(id), owner: 'x' }, oldRecord: null, commitTime: Date.now() })
    await h.drained()
    for (let i = 0; i < 5; i++) await flush()
    expect(changes(ws).map((d) => (d.record as { id: number }).id)).toEqual(Array.from({ length: 100 }, (_, i) => 2 * (i + 1)))
    // The first change starts a check; the 199 that queue behind it go in one more.
    expect(batches).toEqual([1, 199])
  })

  it('gives each change of one transaction its own event type and table (the JSON before the rows is reused only for the same ones)', async () => {
    const { hub: h } = hub((_ch, keys) => new Set(keys), true)
    const ws = await join(h, 'app', 'alice', 'a', { event: '*', table: '*' })
    const other: Relation = { ...rel, oid: 8, table: 'notes' }
    const t = Date.now()
    const row = (id: number) => ({ id: String(id), owner: 'x' })
    h.deliver({ type: 'INSERT', relation: rel, record: row(1), oldRecord: null, commitTime: t })
    h.deliver({ type: 'INSERT', relation: rel, record: row(2), oldRecord: null, commitTime: t })
    h.deliver({ type: 'INSERT', relation: other, record: row(3), oldRecord: null, commitTime: t })
    h.deliver({ type: 'UPDATE', relation: rel, record: row(2), oldRecord: row(2), commitTime: t })
    h.deliver({ type: 'DELETE', relation: rel, record: null, oldRecord: row(1), commitTime: t })
    h.deliver({ type: 'INSERT', relation: rel, record: row(5), oldRecord: null, commitTime: t })
    h.deliver({ type: 'INSERT', relation: rel, record: row(4), oldRecord: null, commitTime: t + 1 })
    await flush()
    const got = changes(ws) as unknown as Array<{ eventType: string; table: string; commit_timestamp: string }>
    expect(got.map((d) => `${d.eventType} ${d.table}`)).toEqual(['INSERT diary', 'INSERT diary', 'INSERT notes', 'UPDATE diary', 'DELETE diary', 'INSERT diary', 'INSERT diary'])
    expect(got.map((d) => Date.parse(d.commit_timestamp) - t)).toEqual([0, 0, 0, 0, 0, 0, 1])
  })

  it('writes a turn of changes once per client, the bytes built once for clients sent the same frames', async () => {
    const { hub: h } = hub((_ch, keys) => new Set(keys), true)
    const a1 = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    const a2 = await join(h, 'app', 'bob', 'a', { event: 'INSERT' })
    const b = await join(h, 'app', 'alice', 'b', { event: '*' })
    const f = await join(h, 'app', 'alice', 'a', { event: 'INSERT', filter: 'owner=eq.x' })
    for (const ws of [a1, a2, b, f]) ws.writes.length = 0
    const insert = (id: number, owner: string): Change => ({ type: 'INSERT', relation: rel, record: { id: String(id), owner }, oldRecord: null, commitTime: Date.now() })
    h.deliver(insert(1, 'x'))
    h.deliver(insert(2, 'y'))
    h.deliver(insert(3, 'x'))
    await flush()
    const ids = (ws: FakeWs) => changes(ws).map((d) => (d.record as { id: number }).id)
    expect(ids(a1)).toEqual([1, 2, 3])
    expect(ids(a2)).toEqual([1, 2, 3])
    expect(ids(b)).toEqual([1, 2, 3])
    expect(ids(f)).toEqual([1, 3])
    // One write each; a1 and a2 (same topic, join ref and bindings) share the very buffer.
    expect([a1, a2, b, f].map((ws) => ws.writes.length)).toEqual([1, 1, 1, 1])
    expect(a2.writes[0]).toBe(a1.writes[0])
    expect(b.writes[0]).not.toBe(a1.writes[0])
    // a1 and a2 are in different visibility groups (their tokens' claims differ) that see these
    // rows alike: one feed, so the change was copied once for both.
    // A subscriber joining later gets the next change (who receives what is not stale).
    const late = await join(h, 'app', 'carol', 'a', { event: 'INSERT' })
    h.deliver(insert(4, 'x'))
    await flush()
    expect(ids(late)).toEqual([4])
    expect(ids(a1)).toEqual([1, 2, 3, 4])
  })

  it('writes its queue of clients in slices: changes decoded meanwhile join the writes of clients not yet written, none lost or reordered', async () => {
    const { hub: h, delivered } = hub((_ch, keys) => new Set(keys), true)
    const N = 100
    const socks: FakeWs[] = []
    for (let i = 0; i < N; i++) socks.push(await join(h, 'app', `u${i}`, 'a', { event: 'INSERT' }))
    // A slow consumer in the middle of the queue: its send buffer is nearly full.
    const slow = socks[50]!
    slow.bufferedAmount = (1 << 20) - 100
    delivered.length = 0
    for (const ws of socks) {
      ws.writes.length = 0
      // 40 µs a write: 16 writes pass the hub's 0.5 ms slice, so a slice ends after 16 clients.
      ws.writeCostMs = 0.04
    }
    const insert = (id: number): Change => ({ type: 'INSERT', relation: rel, record: { id: String(id), owner: 'x' }, oldRecord: null, commitTime: Date.now() })
    h.deliver(insert(1))
    await flush() // one slice
    const firstSlice = socks.filter((ws) => ws.writes.length > 0).length
    expect(firstSlice).toBe(16)
    // Not every recipient written yet: the change is not reported as sent.
    expect(delivered).toEqual([])
    // Two more changes in one burst, while 83 clients still wait for the first.
    h.deliver(insert(2))
    h.deliver(insert(3))
    for (let i = 0; i < 200 && socks.some((ws) => ws !== slow && changes(ws).length < 3); i++) await flush()
    const ids = (ws: FakeWs) => changes(ws).map((d) => (d.record as { id: number }).id)
    for (const ws of socks) if (ws !== slow) expect(ids(ws)).toEqual([1, 2, 3])
    // Written in the first slice: then once more with 2 and 3; the others once, with all three.
    expect(socks.slice(0, 16).map((ws) => ws.writes.length)).toEqual(Array(16).fill(2))
    expect(socks.slice(16).filter((ws) => ws !== slow).every((ws) => ws.writes.length === 1)).toBe(true)
    // Still dropped as a slow consumer, with its reason, and nothing written to it.
    expect(slow.closed?.code).toBe(1008)
    expect(slow.closed?.reason).toMatch(/^slow consumer: /)
    expect(slow.writes).toEqual([])
    // Every delivery reported once its last recipient was written.
    expect(delivered.reduce((a, b) => a + b, 0)).toBe(3 * (N - 1))
  })

  it('writes a big transaction decoded in one turn in 64 KiB pieces, not as one write past the send cap', async () => {
    // 1 MiB cap; 5,000 changes of about 300 bytes (1.5 MB) decoded without a turn in between.
    const { hub: h } = hub((_ch, keys) => new Set(keys), true, 1 << 20)
    const ws = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    ws.writes.length = 0
    const pad = 'x'.repeat(150)
    // Each write is a view of one chunk of the feed's log as it fills, not chunks joined: the
    // first pieces (chunks of 4, 8 and 16 KiB) are joined once, then none.
    const concat = vi.spyOn(Buffer, 'concat')
    try {
      for (let id = 1; id <= 5000; id++) h.deliver({ type: 'INSERT', relation: rel, record: { id: String(id), owner: pad }, oldRecord: null, commitTime: Date.now() })
      expect(concat.mock.calls.length).toBeLessThanOrEqual(1)
    } finally {
      concat.mockRestore()
    }
    // Written while decoding, before any turn.
    expect(ws.writes.length).toBeGreaterThan(15)
    for (let i = 0; i < 5; i++) await flush()
    expect(ws.closed).toBeUndefined()
    expect(Math.max(...ws.writes.map((b) => b.length))).toBeLessThan(64 * 1024 + 1024)
    expect(changes(ws).map((d) => (d.record as { id: number }).id)).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1))
  })

  it('sends a row its feed\'s groups see differently member by member, in order with the feed', async () => {
    // Rows with owner = a user's sub are visible to that user only (as an RLS policy would).
    const { hub: h } = hub((ch, keys) => new Set(keys.filter((k) => k.includes(`"${ch.record!.owner}"`) || ch.record!.owner === 'all')), true)
    const alice = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    const bob = await join(h, 'app', 'bob', 'a', { event: 'INSERT' })
    alice.writes.length = 0
    const insert = (id: number, owner: string): Change => ({ type: 'INSERT', relation: rel, record: { id: String(id), owner }, oldRecord: null, commitTime: Date.now() })
    h.deliver(insert(1, 'all'))
    h.deliver(insert(2, 'alice'))
    h.deliver(insert(3, 'all'))
    h.deliver(insert(4, 'bob'))
    h.deliver(insert(5, 'all'))
    await flush()
    const ids = (ws: FakeWs) => changes(ws).map((d) => (d.record as { id: number }).id)
    expect(ids(alice)).toEqual([1, 2, 3, 5])
    expect(ids(bob)).toEqual([1, 3, 4, 5])
    expect(alice.writes.length).toBe(1)
  })

  it('keeps a channel\'s order between its changes and its other frames (broadcast, leave reply)', async () => {
    const { hub: h } = hub((_ch, keys) => new Set(keys), true)
    const ws = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    const other = new FakeWs()
    h.attach(other as unknown as WebSocket, '2.0.0', { role: 'app', sub: 'x', exp: 2e9 })
    other.in(['1', '1', 'realtime:a', 'phx_join', { config: {} }])
    for (let i = 0; i < 5; i++) await flush()
    const insert = (id: number): Change => ({ type: 'INSERT', relation: rel, record: { id: String(id), owner: 'x' }, oldRecord: null, commitTime: Date.now() })
    ws.frames.length = 0
    h.deliver(insert(1))
    other.in(['1', '2', 'realtime:a', 'broadcast', { type: 'broadcast', event: 'hi', payload: {} }])
    h.deliver(insert(2))
    ws.in(['1', '3', 'realtime:a', 'phx_leave', {}])
    h.deliver(insert(3))
    for (let i = 0; i < 5; i++) await flush()
    const events = ws.frames.map((f) => {
      const [, , , event, payload] = f as [unknown, unknown, unknown, string, { data?: { record: { id: number } } }]
      return event === 'postgres_changes' ? payload.data!.record.id : event
    })
    expect(events).toEqual([1, 'broadcast', 2, 'phx_reply'])
  })

  it('does not keep the members that left a feed that gets no changes, and delivers once to each member after', async () => {
    const { hub: h } = hub((_ch, keys) => new Set(keys), true)
    const stays = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    const feeds = (h as unknown as { feeds: Map<string, { waiting: unknown[]; members: Set<unknown> }> }).feeds
    let comes: FakeWs | undefined
    for (let i = 0; i < 500; i++) {
      comes = await join(h, 'app', 'bob', 'a', { event: 'INSERT' })
      if (i < 499) comes.in(['1', '2', 'realtime:a', 'phx_leave', {}])
    }
    const [feed] = [...feeds.values()]
    expect(feed!.members.size).toBe(2)
    expect(feed!.waiting.length).toBeLessThanOrEqual(2 * 2 + 17)
    h.deliver({ type: 'INSERT', relation: rel, record: { id: '1', owner: 'x' }, oldRecord: null, commitTime: Date.now() })
    await flush()
    expect(changes(stays).map((d) => (d.record as { id: number }).id)).toEqual([1])
    expect(changes(comes!).map((d) => (d.record as { id: number }).id)).toEqual([1])
  })

  it('gives an idle feed\'s buffer back at the sweep once every member has caught up', async () => {
    const { hub: h } = hub((_ch, keys) => new Set(keys), true)
    const ws = await join(h, 'app', 'alice', 'a', { event: 'INSERT' })
    h.deliver({ type: 'INSERT', relation: rel, record: { id: '1', owner: 'x' }, oldRecord: null, commitTime: Date.now() })
    await flush()
    const feeds = (h as unknown as { feeds: Map<string, { log: { capacity: number } }> }).feeds
    const [feed] = [...feeds.values()]
    expect(feed!.log.capacity).toBeGreaterThan(0)
    h.sweep(60_000) // appended since the last sweep: kept
    expect(feed!.log.capacity).toBeGreaterThan(0)
    h.sweep(60_000)
    expect(feed!.log.capacity).toBe(0)
    h.deliver({ type: 'INSERT', relation: rel, record: { id: '2', owner: 'x' }, oldRecord: null, commitTime: Date.now() })
    await flush()
    expect(changes(ws).map((d) => (d.record as { id: number }).id)).toEqual([1, 2])
    // The last member gone: the feed goes too.
    ws.emit('close')
    expect(feeds.size).toBe(0)
  })
})
