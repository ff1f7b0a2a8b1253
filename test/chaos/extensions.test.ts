import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extInstall, extList, extRemove } from '../../src/api/extensions.js'
import { status } from '../../src/api/core.js'
import { auditRecords, extInfo, probeExtension } from '../helpers/extensions.js'
import { waitFor } from '../helpers/wait.js'
import { startSecurityFlock, type SecurityFlock } from '../security/harness.js'

/**
 * Misbehaving extensions, all at once, against one kernel: one that crashes at start, one
 * that allocates without bound (its memory cgroup kills it), one that stops calling the API
 * (hang: the heartbeat watchdog kills it), one that floods the API (the rate limiter refuses,
 * then the flood detector kills it). Each is restarted by the extension restart policy, then
 * given up on (audited); the kernel keeps answering throughout and stays healthy.
 */
let f: SecurityFlock

beforeAll(async () => {
  f = await startSecurityFlock()
}, 180_000)
afterAll(async () => {
  for (const e of (await f?.admin.call(extList, {}).catch(() => ({ extensions: [] })))?.extensions ?? []) await f.admin.call(extRemove, { name: e.name }).catch(() => undefined)
  await f?.stop()
})

describe('misbehaving extensions', () => {
  it('crash, memory blow-up, hang and API flood: restarted, then given up on; the kernel stays healthy', async () => {
    const cases = [
      { name: 'crasher', args: ['crash'], manifest: {} },
      { name: 'hog', args: ['hog'], manifest: { memoryMb: 64 } },
      { name: 'hanger', args: ['hang'], manifest: { heartbeatSeconds: 2 } },
      { name: 'flooder', args: ['flood'], manifest: {} },
    ]
    for (const c of cases) await f.admin.call(extInstall, { source: probeExtension(f.projectDir, c.name, c.args, c.manifest), enable: true })

    // The kernel answers while they misbehave.
    const failed = await waitFor(
      'every misbehaving extension to be given up on',
      async () => {
        const s = await f.admin.call(status, {})
        expect(s.components.find((x) => x.name === 'extensions')?.state).toBe('running')
        const list = await Promise.all(cases.map((c) => extInfo(f.admin, c.name)))
        return list.every((e) => e.state === 'failed') ? list : undefined
      },
      150_000,
      500,
    )
    for (const e of failed) {
      expect(e.restarts, e.name).toBe(3)
      expect(e.pid, e.name).toBeNull()
    }
    const by = Object.fromEntries(failed.map((e) => [e.name, e.lastExit?.reason ?? '']))
    expect(by.crasher).toMatch(/exited with status 3/)
    expect(by.hog).toMatch(/SIGKILL|SIGABRT|SIGTRAP|status 134/)
    expect(by.hanger).toMatch(/hung: no API call for 2 s/)
    expect(by.flooder).toMatch(/flooded the API/)
    const gaveUp = auditRecords(f.layout.auditLog).filter((r) => r.action === 'ext.gave_up').map((r) => r.target)
    expect(gaveUp.sort()).toEqual(['crasher', 'flooder', 'hanger', 'hog'])
    const s = await f.admin.call(status, {})
    expect(s.components.find((x) => x.name === 'extensions')?.detail).toMatch(/gave up on/)
    expect(s.components.filter((x) => x.state !== 'running').map((x) => x.name)).toEqual([])
  }, 200_000)
})
