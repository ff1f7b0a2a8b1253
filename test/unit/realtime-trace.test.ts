import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Change } from '../../src/realtime/change.js'

// The bench-only phase trace (src/realtime/trace.ts): absent unless its variable is set, and then
// it records only while its file exists.
const PG_EPOCH_MS = Date.UTC(2000, 0, 1)
const pgMicros = (ms: number): bigint => BigInt(Math.round((ms - PG_EPOCH_MS) * 1000))

describe('realtime phase trace', () => {
  afterEach(() => {
    vi.unstubAllEnvs()
    vi.useRealTimers()
    vi.resetModules()
  })

  it('does not exist when MAGFLOCK_REALTIME_TRACE is unset', async () => {
    vi.stubEnv('MAGFLOCK_REALTIME_TRACE', '')
    vi.resetModules()
    const { trace } = await import('../../src/realtime/trace.js')
    expect(trace).toBeUndefined()
  })

  it('writes p50/p99 per phase while its file exists, and nothing before', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-rt-trace-'))
    const file = path.join(dir, 'trace.json')
    try {
      vi.useFakeTimers({ toFake: ['setInterval'] })
      vi.stubEnv('MAGFLOCK_REALTIME_TRACE', file)
      vi.resetModules()
      const { trace } = await import('../../src/realtime/trace.js')
      expect(trace).toBeDefined()
      const t = trace!
      let taken = 0
      const step = (commitAgoMs: number, sendAgoMs: number): void => {
        const now = performance.timeOrigin + performance.now()
        const begin = Buffer.alloc(21)
        begin.writeBigInt64BE(pgMicros(now - commitAgoMs), 9)
        t.begin(begin, 9)
        const x = Buffer.alloc(26)
        x[0] = 119
        x.writeBigInt64BE(pgMicros(now - sendAgoMs), 17)
        t.received(x)
        const ch = { type: 'INSERT', commitTime: now - commitAgoMs } as unknown as Change
        t.decoded(ch)
        taken += 3
        t.queued(ch, taken)
        const f = t.flushStart()
        if (f !== undefined) t.flushEnd(f, 3, taken)
      }
      // No file yet: nothing is recorded, nothing written.
      step(40, 10)
      vi.advanceTimersByTime(1000)
      expect(existsSync(file)).toBe(false)
      writeFileSync(file, '{}')
      vi.advanceTimersByTime(1000) // armed: figures start afresh
      step(40, 10)
      step(40, 10)
      // A change whose last recipient is not written yet is not recorded.
      const later = { type: 'INSERT', commitTime: Date.now() } as unknown as Change
      t.decoded(later)
      t.queued(later, taken + 10)
      t.flushEnd(t.flushStart()!, 1, taken + 1)
      vi.advanceTimersByTime(1000)
      const out = JSON.parse(readFileSync(file, 'utf8')) as { phases: Record<string, { p50: number; n: number }>; flushes: number; clientsPerFlush: number }
      expect(out.phases.commit_to_written!.n).toBe(2)
      expect(out.flushes).toBe(3)
      expect(out.clientsPerFlush).toBeCloseTo(7 / 3, 5)
      expect(out.phases.commit_to_walsend!.p50).toBeCloseTo(30, 0)
      expect(out.phases.walsend_to_recv!.p50).toBeGreaterThanOrEqual(9.5)
      expect(out.phases.commit_to_written!.p50).toBeGreaterThanOrEqual(39.5)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
