import { mkdirSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'

/**
 * Issue 10, item 14: two `magflock up` at once on a fresh flock. The second waits for the
 * first and reports the running kernel; neither quotes errors left by earlier boots.
 */
let f: Flock

beforeAll(async () => {
  f = await createFlock()
  // Leftovers of an earlier failed boot that must never reach the output.
  mkdirSync(f.stateDir, { recursive: true, mode: 0o711 })
  writeFileSync(`${f.stateDir}/kernel.out`, 'Error [E_PORT_IN_USE]: STALE-OUT port 1 from an earlier boot\n')
  writeFileSync(
    `${f.stateDir}/kernel.start-error.json`,
    JSON.stringify({ error: { code: 'E_PORT_IN_USE', class: 'unavailable', message: 'STALE-ERROR from an earlier boot' } }),
  )
})

afterAll(async () => {
  await f?.destroy()
})

describe('two concurrent up', () => {
  it('both succeed against one kernel; the second waits for the first', async () => {
    const [a, b] = await Promise.all([f.run<{ launched: boolean; kernel: { pid: number } }>(['up', '--json']), f.run<{ launched: boolean; kernel: { pid: number } }>(['up', '--json'])])
    for (const r of [a, b]) {
      expect(r.exitCode, r.stdout + r.stderr).toBe(0)
      expect(r.stdout + r.stderr).not.toContain('STALE')
    }
    if (!a.json?.ok || !b.json?.ok) throw new Error('no JSON result')
    expect([a.json.data.launched, b.json.data.launched].sort()).toEqual([false, true])
    expect(a.json.data.kernel.pid).toBe(b.json.data.kernel.pid)
  })
})
