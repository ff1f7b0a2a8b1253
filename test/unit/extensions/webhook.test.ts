import nock from 'nock'
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest'
// @ts-expect-error -- the extension is plain JavaScript (no types): it is installed as is.
import { deliver, lagTransitions } from '../../../extensions/webhook/lib.mjs'

/**
 * The webhook extension's delivery policy against nock'd receivers: what is retried, with
 * what backoff, and when it gives up. Sleeps are recorded, never waited.
 */
type Deliver = (url: string, payload: unknown, opts: Record<string, unknown>) => Promise<{ delivered: boolean; attempts: number; status?: number; error?: string }>
const send = deliver as Deliver
const URL_ = 'http://hooks.example.test'

// Unit tests share their worker (isolate: false): nock's interceptors must not outlive this file.
beforeAll(() => {
  if (!nock.isActive()) nock.activate()
  nock.disableNetConnect()
})
afterAll(() => {
  nock.enableNetConnect()
  nock.restore()
})
afterEach(() => nock.cleanAll())

describe('webhook deliver()', () => {
  it('retries 500s and a connection reset with exponential backoff, then delivers', async () => {
    const sleeps: number[] = []
    const bodies: unknown[] = []
    nock(URL_).post('/hook').reply(500).post('/hook').replyWithError({ code: 'ECONNRESET', message: 'socket hang up' }).post('/hook', (b) => (bodies.push(b), true)).reply(204)
    const r = await send(`${URL_}/hook`, { event: 'backup.failed' }, { retries: 5, baseDelayMs: 100, sleep: async (ms: number) => void sleeps.push(ms) })
    expect(r).toMatchObject({ delivered: true, attempts: 3, status: 204 })
    expect(sleeps).toEqual([100, 200])
    expect(bodies).toEqual([{ event: 'backup.failed' }])
    expect(nock.isDone()).toBe(true)
  })

  it('retries 429 too, and gives up after the configured retries', async () => {
    const sleeps: number[] = []
    nock(URL_).post('/hook').times(4).reply(429)
    const r = await send(`${URL_}/hook`, {}, { retries: 3, baseDelayMs: 10, maxDelayMs: 25, sleep: async (ms: number) => void sleeps.push(ms) })
    expect(r).toMatchObject({ delivered: false, attempts: 4, status: 429 })
    expect(sleeps).toEqual([10, 20, 25])
    expect(nock.isDone()).toBe(true)
  })

  it('does not retry a 4xx refusal', async () => {
    nock(URL_).post('/hook').reply(400)
    const r = await send(`${URL_}/hook`, {}, { retries: 5, sleep: async () => undefined })
    expect(r).toEqual({ delivered: false, attempts: 1, status: 400 })
  })

  it('treats a receiver that does not answer within the deadline as a failed attempt', async () => {
    nock(URL_).post('/hook').delay(2_000).reply(200).post('/hook').reply(200)
    const r = await send(`${URL_}/hook`, {}, { retries: 1, timeoutMs: 50, sleep: async () => undefined })
    expect(r).toMatchObject({ delivered: true, attempts: 2 })
  })
})

describe('webhook lagTransitions()', () => {
  it('notifies once when a replica crosses the threshold and once when it recovers', () => {
    const a = lagTransitions(new Set(), [{ name: 'r1', lagBytes: 5_000 }, { name: 'r2', lagBytes: 10 }], 1_000)
    expect(a.started.map((r: { name: string }) => r.name)).toEqual(['r1'])
    const b = lagTransitions(a.lagging, [{ name: 'r1', lagBytes: 6_000 }, { name: 'r2', lagBytes: null }], 1_000)
    expect(b.started).toEqual([])
    const c = lagTransitions(b.lagging, [{ name: 'r1', lagBytes: 0 }], 1_000)
    expect(c.recovered).toEqual(['r1'])
    expect(lagTransitions(new Set(), [{ name: 'r1', lagBytes: 1e9 }], 0).started).toEqual([])
  })
})
