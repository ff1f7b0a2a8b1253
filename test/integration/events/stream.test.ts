import { readdirSync, readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readEvents, type StreamLine } from '../../../src/client/events.js'
import { SUPERUSER_SECRET } from '../../../src/secrets/names.js'
import { codeOf, rawRequest, startSecurityFlock, type SecurityFlock } from '../../security/harness.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * GET /v1/events against a real kernel (real Postgres, the real control socket): order,
 * resume, type filter, roles and extension grants, a slow reader cut with a final line.
 */
let f: SecurityFlock
const ext: Record<string, string> = {}

beforeAll(async () => {
  f = await startSecurityFlock({ yaml: 'kernel:\n  events:\n    readerMaxQueuedBytes: 16384\n' })
  const mk = async (name: string, grants: string[]) => (ext[name] = (await f.kernel.tokens.create({ role: 'extension', name: `ext-${name}`, extension: name, grants })).token)
  await mk('cfg', ['events:subscribe:config.*'])
  await mk('none', ['db:connect:app:ro'])
  await mk('caller', ['events:subscribe:kernel.started', 'api:call:status', 'api:call:token.list'])
}, 180_000)
afterAll(async () => {
  await f?.stop()
})

const publish = (n: number, tag: string) => {
  for (let i = 0; i < n; i++) f.kernel.services.events.publish('config.reloaded', { applied: [`${tag}-${i}`], restartRequired: [] })
}

async function read(token: string, query: Parameters<typeof readEvents>[0]['query'], signal?: AbortSignal, onLine?: (l: StreamLine) => void) {
  const lines: StreamLine[] = []
  const res = await readEvents({
    socketPath: f.layout.socket,
    stateDir: f.stateDir,
    token,
    query,
    onLine: (l) => {
      lines.push(l)
      onLine?.(l)
    },
    ...(signal ? { signal } : {}),
  })
  return { lines, res }
}

describe('GET /v1/events', () => {
  it('returns every kept event in seq order, from the first', async () => {
    const { lines } = await read(f.tokens.admin, {})
    expect(lines.length).toBeGreaterThan(3)
    expect(lines[0]!.seq).toBe(1)
    lines.forEach((l, i) => expect(l.seq).toBe(i + 1))
    expect(lines.map((l) => l.type)).toContain('kernel.started')
    expect(lines.every((l) => typeof l.id === 'string' && typeof l.time === 'string' && typeof l.data === 'object')).toBe(true)
  })

  it('resumes after a cursor with no loss and no duplicate, filtered by type', async () => {
    const cursor = f.kernel.services.journal.lastSeq
    publish(30, 'resume')
    f.kernel.services.events.publish('api.denied', { route: 'x', reason: 'test' })
    const { lines } = await read(f.tokens.operator, { after: cursor })
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 31 }, (_, i) => cursor + 1 + i))
    const filtered = await read(f.tokens.viewer, { after: cursor, type: 'config.*' })
    expect(filtered.lines.length).toBe(30)
    expect(filtered.lines.map((l) => (l.data as { applied: string[] }).applied[0])).toEqual(Array.from({ length: 30 }, (_, i) => `resume-${i}`))
    const exact = await read(f.tokens.viewer, { after: cursor, type: 'api.denied,component.*' })
    expect(exact.lines.map((l) => l.type)).toEqual(['api.denied'])
  })

  it('follows live events in order', async () => {
    const before = f.kernel.services.journal.subscribers
    const stop = new AbortController()
    const got: StreamLine[] = []
    const reading = read(f.tokens.admin, { follow: true, type: 'config.reloaded' }, stop.signal, (l) => got.push(l))
    // Follow without a cursor starts at the end: wait until the subscription is in place.
    await waitFor('follower subscribed', async () => f.kernel.services.journal.subscribers > before, 10_000)
    publish(50, 'live')
    await waitFor('50 live events', async () => got.length >= 50, 30_000)
    stop.abort()
    await reading
    expect(got.map((l) => (l.data as { applied: string[] }).applied[0])).toEqual(Array.from({ length: 50 }, (_, i) => `live-${i}`))
    const seqs = got.map((l) => l.seq!)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
  })

  it('never carries a secret value the kernel knows, on the stream or on disk', async () => {
    const password = (await f.kernel.services.secrets.get(SUPERUSER_SECRET))!
    expect(password.length).toBeGreaterThan(8)
    const cursor = f.kernel.services.journal.lastSeq
    f.kernel.services.events.publish('api.denied', { route: 'x', reason: `a careless message with ${password} in it` })
    const { lines } = await read(f.tokens.admin, { after: cursor })
    expect(lines.length).toBe(1)
    expect(JSON.stringify(lines)).not.toContain(password)
    expect((lines[0]!.data as { reason: string }).reason).toContain('***')
    const dir = `${f.stateDir}/events`
    for (const seg of readdirSync(dir)) expect(readFileSync(`${dir}/${seg}`, 'utf8')).not.toContain(password)
  })

  it('a follower gets its response head at once, before any event arrives', { timeout: 20_000 }, async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath: f.layout.socket, path: '/v1/events?follow=1&type=no.such.type', headers: { host: 'magflock', authorization: `Bearer ${f.tokens.admin}` } }, (res) => {
        resolve(res.statusCode ?? 0)
        req.destroy()
      })
      req.on('error', reject)
      req.end()
    })
    expect(status).toBe(200)
  })

  it('refuses a cursor newer than the journal and bad parameters, and ci tokens', async () => {
    const ahead = await f.request('admin', { path: `/v1/events?after=${f.kernel.services.journal.lastSeq + 1000}` })
    expect(ahead.status).toBe(400)
    expect(codeOf(ahead)).toBe('E_EVENT_CURSOR_AHEAD')
    for (const q of ['after=-1', 'after=abc', 'type=Bad%20Type', 'follow=yes', 'unknown=1']) {
      const r = await f.request('admin', { path: `/v1/events?${q}` })
      expect(r.status, q).toBe(400)
      expect(codeOf(r), q).toBe('E_INVALID_REQUEST')
    }
    const ci = await f.request('ci', { path: '/v1/events' })
    expect(ci.status).toBe(403)
  })
})

describe('extension principals', () => {
  it('see only the event types their events:subscribe grants match', async () => {
    const cursor = f.kernel.services.journal.lastSeq
    publish(3, 'ext')
    f.kernel.services.events.publish('api.denied', { route: 'y', reason: 'hidden from the extension' })
    const { lines } = await read(ext.cfg!, { after: cursor })
    expect(lines.map((l) => l.type)).toEqual(['config.reloaded', 'config.reloaded', 'config.reloaded'])
    // Asking for more than granted narrows to the grant, never widens it.
    const asked = await read(ext.cfg!, { after: cursor, type: 'api.*' })
    expect(asked.lines).toEqual([])
  })

  it('without any subscribe grant: E_EVENTS_NOT_GRANTED', async () => {
    const r = await readEvents({ socketPath: f.layout.socket, stateDir: f.stateDir, token: ext.none!, query: {}, onLine: () => {} }).catch((e: unknown) => e)
    expect((r as { code?: string }).code).toBe('E_EVENTS_NOT_GRANTED')
  })

  it('reach a route only through api:call, and never a sensitive one', async () => {
    expect((await rawRequest(f.layout.socket, ext.caller!, { path: '/v1/status' })).status).toBe(200)
    const denied = await rawRequest(f.layout.socket, ext.caller!, { path: '/v1/metrics' })
    expect(denied.status).toBe(403)
    expect(codeOf(denied)).toBe('E_FORBIDDEN')
    // Granted, but token routes are never for extensions.
    const tokens = await rawRequest(f.layout.socket, ext.caller!, { path: '/v1/tokens' })
    expect(tokens.status).toBe(403)
  })
})

describe('a slow reader', () => {
  it('is disconnected with a final stream.closed line naming where to resume; the kernel keeps serving', { timeout: 120_000 }, async () => {
    const before = f.kernel.services.journal.subscribers
    const sock = net.connect(f.layout.socket)
    await new Promise<void>((r) => sock.once('connect', () => r()))
    sock.write(`GET /v1/events?follow=1 HTTP/1.1\r\nhost: magflock\r\nauthorization: Bearer ${f.tokens.admin}\r\n\r\n`)
    sock.pause() // never reads
    await waitFor('reader subscribed', async () => f.kernel.services.journal.subscribers > before, 10_000)
    // Fill the socket buffers and then the reader's queue.
    const big = Array.from({ length: 20 }, (_, i) => `key-${i}-${'x'.repeat(100)}`)
    let rounds = 0
    await waitFor(
      'the reader is dropped',
      async () => {
        for (let i = 0; i < 200; i++) f.kernel.services.events.publish('config.reloaded', { applied: big, restartRequired: [] })
        rounds++
        return f.kernel.services.journal.subscribers <= before
      },
      60_000,
    )
    expect(rounds).toBeGreaterThan(0)
    // Now read what it was sent: events, then the final line.
    let text = ''
    sock.setEncoding('utf8')
    sock.on('data', (c: string) => (text += c))
    sock.resume()
    await waitFor('the final line', async () => text.includes('stream.closed'), 30_000)
    const last = text.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!
    const closed = JSON.parse(last) as { type: string; data: { reason: string; resumeAfter: number } }
    expect(closed.type).toBe('stream.closed')
    expect(closed.data.reason).toMatch(/slow reader/)
    expect(closed.data.resumeAfter).toBeGreaterThan(0)
    sock.destroy()
    // The kernel still answers, and a resume from the cursor gets the rest.
    expect((await f.request('admin', { path: '/v1/status' })).status).toBe(200)
    const rest = await read(f.tokens.admin, { after: closed.data.resumeAfter, type: 'config.reloaded' })
    expect(rest.lines[0]!.seq).toBeGreaterThan(closed.data.resumeAfter)
  })
})
