import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'

/**
 * kill -9 of the kernel: every event it had accepted is in the journal (appends are
 * synchronous), the next kernel continues the numbering, and a reader resuming from its
 * cursor gets everything after it with no gap.
 */
let f: Flock
const ndjson = (s: string) =>
  s
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { seq: number; type: string })

beforeAll(async () => {
  f = await createFlock()
  const up = await f.run(['up', '--json'])
  expect(up.exitCode, up.stderr).toBe(0)
}, 180_000)
afterAll(async () => {
  await f?.destroy()
})

describe('event journal across kill -9 of the kernel (chaos)', () => {
  it('keeps every accepted event and the next kernel continues the seq', { timeout: 180_000 }, async () => {
    for (let i = 0; i < 3; i++) expect((await f.run(['config', 'reload', '--json'])).exitCode).toBe(0)
    const before = ndjson((await f.run(['events', '--json'])).stdout)
    const cursor = before.at(-1)!.seq
    expect(before.filter((l) => l.type === 'config.reloaded').length).toBe(3)
    const pid = (JSON.parse(readFileSync(f.layout.kernelJson, 'utf8')) as { pid: number }).pid
    process.kill(pid, 'SIGKILL')
    await waitFor('the kernel is gone', async () => !isProcessAliveSync(pid), 30_000)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stderr).toBe(0)
    const all = ndjson((await f.run(['events', '--json'])).stdout)
    expect(all.map((l) => l.seq)).toEqual(all.map((_, i) => i + 1))
    expect(all.slice(0, before.length)).toEqual(before)
    const resumed = ndjson((await f.run(['events', '--after', String(cursor), '--json'])).stdout)
    expect(resumed[0]!.seq).toBe(cursor + 1)
    expect(resumed.map((l) => l.type)).toContain('kernel.started')
    // No kernel.stopping: it was killed, not stopped.
    expect(resumed.map((l) => l.type)).not.toContain('kernel.stopping')
  })
})
