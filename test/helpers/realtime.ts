import { RealtimeClient, type RealtimeChannel } from '@supabase/realtime-js'
import { freePort } from '../../src/platform/ports.js'
import { createFlock, type Flock } from './flock.js'
import { waitFor } from './wait.js'
import { query } from './sql.js'
import type { RealtimeStatus } from '../../src/api/realtime.js'
import type { RealtimeTokenResult } from '../../src/api/realtime.js'

/** A flock with realtime enabled, its kernel started (built CLI) and the change stream up. */
export interface RealtimeFlock {
  f: Flock
  pgPort: number
  rtPort: number
  url: string
  /** A superuser query on the current primary's port (or `port`). */
  sql<T extends Record<string, unknown> = Record<string, unknown>>(text: string, port?: number): Promise<T[]>
}

export async function createRealtimeFlock(extraYaml = ''): Promise<RealtimeFlock> {
  const pgPort = await freePort()
  const rtPort = await freePort()
  const f = await createFlock({
    yaml:
      `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\n    wal_log_hints: "on"\nmetrics:\n  port: ${await freePort()}\n` +
      `replication:\n  basePort: ${await freePort()}\nrealtime:\n  enabled: true\n  port: ${rtPort}\n  maxMessageBytes: 65536\n${extraYaml}`,
  })
  const r = await f.run(['kernel', 'start', '--json'])
  if (r.exitCode !== 0) throw new Error(`kernel start failed: ${r.stdout} ${r.stderr}`)
  await waitStreaming(f)
  const password = await f.superuserPassword()
  return { f, pgPort, rtPort, url: `ws://127.0.0.1:${rtPort}/realtime/v1`, sql: (text, port = pgPort) => query(port, password, text) }
}

export async function realtimeStatus(f: Flock): Promise<RealtimeStatus> {
  const r = await f.run<RealtimeStatus>(['realtime', 'status', '--json'])
  if (!r.json?.ok) throw new Error(`realtime status failed: ${r.stdout} ${r.stderr}`)
  return r.json.data
}

export async function waitStreaming(f: Flock, primary?: string): Promise<RealtimeStatus> {
  return waitFor('the realtime change stream', async () => {
    const s = await realtimeStatus(f)
    return s.stream?.connected === true && (primary === undefined || s.stream.primary === primary) ? s : undefined
  })
}

export async function token(f: Flock, role: string, claims?: Record<string, unknown>): Promise<string> {
  const args = ['realtime', 'token', '--role', role, '--json']
  if (claims) args.push('--claims', JSON.stringify(claims))
  const r = await f.run<RealtimeTokenResult>(args)
  if (!r.json?.ok) throw new Error(`realtime token failed: ${r.stdout} ${r.stderr}`)
  return r.json.data.token
}

export function client(url: string, apikey: string): RealtimeClient {
  return new RealtimeClient(url, { params: { apikey }, heartbeatIntervalMs: 5000 })
}

/** subscribe() resolved with its final status (SUBSCRIBED, CHANNEL_ERROR, TIMED_OUT, CLOSED). */
export function subscribed(ch: RealtimeChannel): Promise<{ status: string; err?: Error | undefined }> {
  return new Promise((resolve) => {
    ch.subscribe((status, err) => {
      if (status !== 'CLOSED' || err) resolve({ status, err })
    })
  })
}

/** Collects what a listener receives; `next(n)` waits for n items. */
export class Inbox<T> {
  readonly items: T[] = []
  push = (v: T): void => {
    this.items.push(v)
  }
  async next(n: number, what = 'messages', timeoutMs = 30_000): Promise<T[]> {
    await waitFor(`${n} ${what} (have ${this.items.length})`, async () => this.items.length >= n, timeoutMs)
    return this.items.slice(0, n)
  }
}
