import { execFileSync, type ChildProcess } from 'node:child_process'
import readline from 'node:readline'
import { expect } from 'vitest'
import type { NetHost, NetTopology } from './netns.js'

/**
 * Shared pieces of the multi-host chaos tests (test/chaos/multihost*.test.ts): JSON lines from
 * a child, SQL and etcd reads from the client namespace, and the two-primaries hunter over
 * the probes' samples (test/helpers/mh-client.mjs prints them).
 */
export type Sample = { t: number; p: number }

export function jsonLines(p: ChildProcess, on: (o: Record<string, unknown>) => void): void {
  if (!p.stdout) return
  readline.createInterface({ input: p.stdout }).on('line', (l) => {
    try {
      on(JSON.parse(l) as Record<string, unknown>)
    } catch {
      // not ours
    }
  })
}

/** SQL as the superuser from the client namespace; `env` adds e.g. PGSSLMODE. */
export function sqlFromClient(net: NetTopology, client: string, h: NetHost, q: string, env: Record<string, string>): Array<Record<string, unknown>> {
  const out = execFileSync('ip', ['netns', 'exec', net.client.ns, process.execPath, client, 'sql', `${h.addr}:5432`, q], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  })
  return JSON.parse(out) as Array<Record<string, unknown>>
}

/** One flock key (`/magflock/<flock>/<key>`) read through every etcd member. */
export function etcdGetFromClient(net: NetTopology, endpoints: string[], flock: string, key: string): string {
  return execFileSync('ip', ['netns', 'exec', net.client.ns, 'etcdctl', '--endpoints', endpoints.join(','), '--command-timeout=2s', 'get', `/magflock/${flock}/${key}`, '--print-value-only'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

/** The hunter: at no sampled moment were both instances primaries (1-sample slack). */
export function assertNeverTwoPrimaries(a: Sample[], b: Sample[]): void {
  for (const s of a.filter((x) => x.p === 1)) {
    const clash = b.find((x) => x.p === 1 && Math.abs(x.t - s.t) < 20)
    expect(clash, `h1 primary at ${s.t} while h2 primary at ${clash?.t}`).toBeUndefined()
  }
}
