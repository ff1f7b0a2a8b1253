import { afterEach, describe, expect, it } from 'vitest'
import https from 'node:https'
import net from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { Hub, type HubDeps } from '../../src/realtime/hub.js'
import { chooseWriter, chooseYield, loadNativeWrites, type NativeWrites } from '../../src/realtime/native.js'
import type { Change } from '../../src/realtime/change.js'
import type { Relation } from '../../src/realtime/pgoutput.js'
import { createCa, issueCert } from '../../src/tls/certs.js'

/**
 * The native socket writer (native/socket-writes.c, built into dist/native by `npm run build`)
 * on real loopback sockets, and the hub's flush through it: what a send does not take goes
 * through Node, in order.
 */
const EAGAIN = -11
const EBADF = -9
const EINVAL = -22
const native = loadNativeWrites()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** n connected pairs: the server side (whose fds the writer gets) and the client side. */
async function pairs(n: number): Promise<Array<{ server: net.Socket; client: net.Socket }>> {
  const accepted: net.Socket[] = []
  const srv = net.createServer((s) => {
    s.on('error', () => undefined)
    accepted.push(s)
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as net.AddressInfo).port
  const clients: net.Socket[] = []
  for (let i = 0; i < n; i++) {
    const c = net.connect(port, '127.0.0.1')
    c.on('error', () => undefined)
    await new Promise((r) => c.once('connect', r))
    clients.push(c)
  }
  while (accepted.length < n) await sleep(5)
  cleanups.push(() => {
    for (const s of [...accepted, ...clients]) s.destroy()
    srv.close()
  })
  // Accepted in connection order on loopback; matched by ports to be sure.
  return clients.map((client) => ({ client, server: accepted.find((s) => s.remotePort === client.localPort)! }))
}

const fdOf = (s: net.Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd

/** Everything a socket receives, as one Buffer when asked. */
function collect(s: net.Socket): () => Buffer {
  const parts: Buffer[] = []
  s.on('data', (d: Buffer) => parts.push(d))
  return () => Buffer.concat(parts)
}

describe('native socket writer', () => {
  it('is built by npm run build and loads on Linux', () => {
    expect(process.platform).toBe('linux')
    expect(native.error).toBeUndefined()
    expect(typeof native.writes?.writeMany).toBe('function')
    expect(typeof native.writes?.yieldCpu).toBe('function')
    expect(native.writes!.yieldCpu()).toBeUndefined()
  })

  it('gives the hub its yield for realtime.yieldCpu, and nothing when it is off or does not load', () => {
    expect(chooseYield(true)).toBe(native.writes!.yieldCpu)
    expect(chooseYield(false)).toBeUndefined()
    expect(chooseYield(true, () => ({ writes: undefined, error: 'Cannot find module socket-writes.node' }))).toBeUndefined()
  })

  it('is chosen by realtime.nativeWrites; without it, or when it does not load, the hub writes through Node and says why', () => {
    expect(chooseWriter(true)).toMatchObject({ native: true, writes: native.writes })
    expect(chooseWriter(false)).toEqual({ native: false, writes: undefined, detail: 'Node socket writes (realtime.nativeWrites is false)' })
    const missing = chooseWriter(true, () => ({ writes: undefined, error: 'Cannot find module socket-writes.node' }))
    expect(missing).toMatchObject({ native: false, writes: undefined })
    expect(missing.detail).toMatch(/did not load \(Cannot find module socket-writes.node\); npm run build builds it/)
  })

  it('writes each socket its own bytes (views of one buffer included) and reports what each took', async () => {
    const ps = await pairs(5)
    const got = ps.map((p) => collect(p.client))
    const log = Buffer.from('0123456789abcdefghij')
    const bufs = [Buffer.from('first'), log.subarray(3, 9), log.subarray(10), Buffer.alloc(0), Buffer.from('ü€')]
    const out = new Int32Array(5).fill(99)
    native.writes!.writeMany(Int32Array.from(ps.map((p) => fdOf(p.server))), bufs, 5, out)
    expect([...out]).toEqual(bufs.map((b) => b.length))
    await sleep(50)
    expect(got.map((g) => g().toString())).toEqual(['first', '345678', 'abcdefghij', '', 'ü€'])
  })

  it('takes part of a write when the peer does not read, then none (EAGAIN), and never blocks', async () => {
    const [p] = await pairs(1)
    p!.client.pause()
    const big = Buffer.alloc(64 * 1024 * 1024, 7)
    const out = new Int32Array(1)
    const fds = Int32Array.of(fdOf(p!.server))
    native.writes!.writeMany(fds, [big], 1, out)
    expect(out[0]).toBeGreaterThan(0)
    expect(out[0]).toBeLessThan(big.length)
    native.writes!.writeMany(fds, [big], 1, out)
    expect(out[0]).toBe(EAGAIN)
  })

  it('answers -errno for a bad fd and a buffer that is not bytes, and throws on bad arguments', () => {
    const out = new Int32Array(2)
    native.writes!.writeMany(Int32Array.of(-1, 1_000_000), [Buffer.from('x'), Buffer.from('y')], 2, out)
    expect([...out]).toEqual([EBADF, EBADF])
    native.writes!.writeMany(Int32Array.of(-1), ['text' as unknown as Buffer], 1, out)
    expect(out[0]).toBe(EINVAL)
    const w = native.writes! as unknown as { writeMany(...a: unknown[]): void }
    expect(() => w.writeMany(new Int32Array(1), [Buffer.from('x')], 2, new Int32Array(1))).toThrow(/count exceeds/)
    expect(() => w.writeMany([1], [Buffer.from('x')], 1, new Int32Array(1))).toThrow(/fds must be an Int32Array/)
    expect(() => w.writeMany(new Int32Array(1), 'x', 1, new Int32Array(1))).toThrow(/bufs must be an array/)
    expect(() => w.writeMany(new Int32Array(1), [], 0, new Float64Array(1))).toThrow(/out must be an Int32Array/)
    expect(() => w.writeMany()).toThrow(TypeError)
  })
})

// ——— the hub's flush through the writer, with real ws sockets ———

const rel: Relation = { oid: 9, schema: 'public', table: 'notes', replicaIdentity: 'd', primaryKey: ['id'], columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }, { name: 'pad', typeOid: 25, type: 'text', key: false }] }

/** A spy around the writer: per call, how many sockets, and every result short of the whole. */
function spy(w: NativeWrites): NativeWrites & { sockets: number; short: number } {
  const s = {
    sockets: 0,
    short: 0,
    writeMany(fds: Int32Array, bufs: Uint8Array[], count: number, out: Int32Array) {
      w.writeMany(fds, bufs, count, out)
      s.sockets += count
      for (let i = 0; i < count; i++) if (out[i]! < bufs[i]!.length) s.short++
    },
    yieldCpu: () => w.yieldCpu(),
  }
  return s
}

function baseDeps(maxBufferedBytes: number): HubDeps {
  return {
    maxBufferedBytes,
    maxChannelsPerClient: 10,
    publication: 'p',
    verify: () => ({ ok: false, reason: 'malformed', message: 'no' }),
    visibleBatch: async (items) => items.map((x) => new Set(x.groups.map((g) => g.key))),
    visibleGroupsCached: (_ch, groups) => new Set(groups.map((g) => g.key)),
    roleExists: async () => true,
    published: async () => true,
  }
}

const insertOf = (id: number, pad: string): Change => ({ type: 'INSERT', relation: rel, record: { id: String(id), pad }, oldRecord: null, commitTime: Date.now() })

/** A client joined to realtime:notes (INSERTs of public.notes): the ids it receives, in order. */
async function subscriber(url: string, opts: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket; ids: number[]; closed: number | undefined }> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...opts })
  const c = { ws, ids: [] as number[], closed: undefined as number | undefined }
  ws.on('error', () => undefined)
  ws.on('close', (code) => (c.closed = code))
  await new Promise((r) => ws.once('open', r))
  const joined = new Promise((r) => ws.once('message', r))
  ws.send(JSON.stringify(['1', '1', 'realtime:notes', 'phx_join', { config: { postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'notes' }] } }]))
  await joined
  ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as [unknown, unknown, string, string, { data?: { record: { id: number } } }]
    if (m[3] === 'postgres_changes') c.ids.push(m[4].data!.record.id)
  })
  return c
}

async function hubWithClients(n: number, opts: { writes?: NativeWrites; maxBufferedBytes?: number; yieldCpu?: () => void; flushSliceMs?: number }) {
  const hub = new Hub({ ...baseDeps(opts.maxBufferedBytes ?? 64 * 1024 * 1024), nativeWrites: opts.writes, yieldCpu: opts.yieldCpu, flushSliceMs: opts.flushSliceMs })
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  await new Promise((r) => wss.once('listening', r))
  wss.on('connection', (ws) => hub.attach(ws, '2.0.0', { role: 'app', sub: 'u', exp: 2e9 }))
  const port = (wss.address() as net.AddressInfo).port
  const clients: Array<Awaited<ReturnType<typeof subscriber>>> = []
  for (let i = 0; i < n; i++) clients.push(await subscriber(`ws://127.0.0.1:${port}/`))
  cleanups.push(async () => {
    hub.closeAll(1001, 'test over')
    for (const c of clients) c.ws.terminate()
    await new Promise((r) => wss.close(r))
  })
  return { hub, clients, insert: insertOf }
}

describe('realtime hub with the native writer', () => {
  it('delivers every change to every client in order, the writes going through the writer in batches', async () => {
    const w = spy(native.writes!)
    const { hub, clients, insert } = await hubWithClients(40, { writes: w })
    for (let id = 1; id <= 300; id++) {
      hub.deliver(insert(id, 'x'.repeat(id % 50)))
      if (id % 7 === 0) await new Promise((r) => setImmediate(r))
    }
    const want = Array.from({ length: 300 }, (_, i) => i + 1)
    for (let i = 0; i < 200 && clients.some((c) => c.ids.length < 300); i++) await sleep(10)
    for (const c of clients) expect(c.ids).toEqual(want)
    expect(w.sockets).toBeGreaterThanOrEqual(40)
  })

  it('yields the CPU between slices that leave writes pending, and not after the slice that ends the queue', async () => {
    // Slices of 0 ms end after each batch of 16 sockets: 40 clients take 3 slices, 2 yields.
    const yields: number[] = []
    const short = await hubWithClients(40, { writes: native.writes, flushSliceMs: 0, yieldCpu: () => yields.push(short.clients.filter((c) => c.ids.length === 1).length) })
    short.hub.deliver(short.insert(1, 'a'))
    for (let i = 0; i < 100 && short.clients.some((c) => c.ids.length < 1); i++) await sleep(10)
    for (const c of short.clients) expect(c.ids).toEqual([1])
    expect(yields.length).toBe(2)
    // A slice long enough for all 40 (the default 0.5 ms is, on a machine that is not loaded)
    // writes them at once: nothing is pending, nothing to yield to.
    let yielded = 0
    const whole = await hubWithClients(40, { writes: native.writes, flushSliceMs: 10_000, yieldCpu: () => yielded++ })
    whole.hub.deliver(whole.insert(2, 'b'))
    for (let i = 0; i < 100 && whole.clients.some((c) => c.ids.length < 1); i++) await sleep(10)
    for (const c of whole.clients) expect(c.ids).toEqual([2])
    expect(yielded).toBe(0)
  })

  it('hands what a send did not take to Node, which keeps the order until the client reads again', async () => {
    const w = spy(native.writes!)
    const { hub, clients, insert } = await hubWithClients(6, { writes: w })
    // One client stops reading: the OS takes part of a write, then nothing (EAGAIN).
    const slow = clients[0]!
    const sock = (slow.ws as unknown as { _socket: net.Socket })._socket
    sock.pause()
    // Until a send comes back short: how much the OS takes first depends on the host's TCP
    // buffers (their autotuning), so the test keeps writing until it happens. Under 64 KiB per
    // turn, so every write is a slice's (a feed holding 64 KiB is written at once, through Node).
    const pad = 'p'.repeat(6_000)
    let n = 0
    while (w.short === 0 && n < 5000) {
      for (let k = 0; k < 10; k++) hub.deliver(insert(++n, pad))
      await new Promise((r) => setImmediate(r))
    }
    expect(w.short).toBeGreaterThan(0)
    // Some more, which queue behind the rest Node holds.
    for (let k = 0; k < 50; k++) hub.deliver(insert(++n, pad))
    await sleep(50)
    sock.resume()
    const want = Array.from({ length: n }, (_, i) => i + 1)
    for (let i = 0; i < 1000 && clients.some((c) => c.ids.length < n); i++) await sleep(10)
    for (const c of clients) expect(c.ids).toEqual(want)
    // Written through the writer again once Node's queue drained.
    const before = w.sockets
    hub.deliver(insert(n + 1, 'x'))
    for (let i = 0; i < 100 && clients.some((c) => c.ids.length < n + 1); i++) await sleep(10)
    expect(w.sockets - before).toBe(6)
    expect(slow.closed).toBeUndefined()
  })

  it('still drops a client that stops reading once Node holds more than the cap for it', async () => {
    const { hub, clients, insert } = await hubWithClients(3, { writes: native.writes!, maxBufferedBytes: 1024 * 1024 })
    const slow = clients[0]!
    ;(slow.ws as unknown as { _socket: net.Socket })._socket.pause()
    const pad = 'p'.repeat(30_000)
    for (let id = 1; id <= 600 && slow.closed === undefined; id++) {
      hub.deliver(insert(id, pad))
      if (id % 10 === 0) await sleep(1)
    }
    ;(slow.ws as unknown as { _socket: net.Socket })._socket.resume()
    // Waits of up to 10 s: 18 MB to two readers on a loaded machine (the whole suite beside it).
    for (let i = 0; i < 1000 && slow.closed === undefined; i++) await sleep(10)
    expect([1008, 1006]).toContain(slow.closed)
    expect(hub.status().clients).toBe(2)
    for (let i = 0; i < 1000 && clients[1]!.ids.length < 600; i++) await sleep(10)
    expect(clients[1]!.ids.length).toBe(600)
    expect(clients[2]!.ids).toEqual(clients[1]!.ids)
  })

  it('is never used for a TLS socket (its handle reports the fd under TLS): those frames go through Node, encrypted', async () => {
    const ca = await createCa('native-test', 1)
    const cert = await issueCert({ ca, commonName: '127.0.0.1', sans: ['127.0.0.1'], usage: 'server', days: 1 })
    const w = spy(native.writes!)
    const hub = new Hub({ ...baseDeps(64 * 1024 * 1024), nativeWrites: w })
    const server = https.createServer({ key: cert.keyPem, cert: cert.certPem })
    const wss = new WebSocketServer({ server, perMessageDeflate: false })
    wss.on('connection', (ws) => hub.attach(ws, '2.0.0', { role: 'app', sub: 'u', exp: 2e9 }))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanups.push(async () => {
      hub.closeAll(1001, 'test over')
      await new Promise((r) => wss.close(r))
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    })
    const { ws, ids } = await subscriber(`wss://127.0.0.1:${(server.address() as net.AddressInfo).port}/`, { ca: ca.certPem })
    cleanups.push(() => ws.terminate())
    for (let id = 1; id <= 20; id++) hub.deliver(insertOf(id, 'x'))
    for (let i = 0; i < 100 && ids.length < 20; i++) await sleep(10)
    expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    expect(w.sockets).toBe(0)
  })
})
