import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ExtInfo } from '../../src/api/extensions.js'
import { freePort } from '../../src/platform/ports.js'
import { ROOT } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * `magflock ext …` as a user runs it (the built CLI, --json): install grants nothing without
 * --grant, grant/revoke/enable/disable/logs/remove, and the documented exit codes.
 */
describe('magflock ext (built CLI)', () => {
  let f: Flock
  const src = path.join(ROOT, 'templates/extension')

  beforeAll(async () => {
    f = await createFlock({ yaml: `postgres:\n  port: ${await freePort()}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${await freePort()}\n` })
    const r = await f.run(['kernel', 'start', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
  })
  afterAll(async () => {
    await f.run(['ext', 'remove', 'my-extension', '--json'])
    await f.destroy()
  })

  it('install → grant → enable → logs → disable → remove, each with a stable --json shape', async () => {
    const inst = await f.run<ExtInfo>(['ext', 'install', src, '--json'])
    expect(inst.exitCode, inst.stdout + inst.stderr).toBe(0)
    expect(inst.json).toMatchObject({ ok: true, data: { name: 'my-extension', grants: [], enabled: false, osUser: 'mfext-my-extension' } })

    const again = await f.run(['ext', 'install', src, '--json'])
    expect(again.exitCode).toBe(4)
    expect(again.json).toMatchObject({ ok: false, error: { code: 'E_EXT_EXISTS' } })

    const notRequested = await f.run(['ext', 'grant', 'my-extension', 'db:connect:app:rw', '--json'])
    expect(notRequested.exitCode).toBe(5)
    expect(notRequested.json).toMatchObject({ ok: false, error: { code: 'E_EXT_CAPABILITY_NOT_REQUESTED' } })
    const bad = await f.run(['ext', 'grant', 'my-extension', 'root:please', '--json'])
    expect(bad.exitCode).toBe(2)
    expect(bad.json).toMatchObject({ ok: false, error: { code: 'E_EXT_CAPABILITY_INVALID' } })

    for (const cap of ['config:read', 'state:dir', 'events:subscribe:backup.*']) {
      const g = await f.run<ExtInfo>(['ext', 'grant', 'my-extension', cap, '--json'])
      expect(g.exitCode, g.stdout).toBe(0)
    }
    const en = await f.run<ExtInfo>(['ext', 'enable', 'my-extension', '--json'])
    expect(en.exitCode, en.stdout + en.stderr).toBe(0)
    expect(en.json).toMatchObject({ ok: true, data: { enabled: true, state: 'running' } })

    await waitFor('the extension to log that it started', async () => {
      const l = await f.run<{ lines: string[] }>(['ext', 'logs', 'my-extension', '--json'])
      return l.json?.ok && l.json.data.lines.some((x) => x.includes('"msg":"started"')) ? true : undefined
    }, 60_000, 250)

    const list = await f.run<{ extensions: ExtInfo[] }>(['ext', 'list', '--json'])
    expect(list.json).toMatchObject({ ok: true, data: { extensions: [{ name: 'my-extension', state: 'running', grants: ['config:read', 'state:dir', 'events:subscribe:backup.*'] }] } })

    const rv = await f.run<ExtInfo>(['ext', 'revoke', 'my-extension', 'config:read', '--json'])
    expect(rv.json).toMatchObject({ ok: true, data: { grants: ['state:dir', 'events:subscribe:backup.*'] } })
    const missing = await f.run(['ext', 'revoke', 'my-extension', 'config:read', '--json'])
    expect(missing.exitCode).toBe(3)

    const dis = await f.run<ExtInfo>(['ext', 'disable', 'my-extension', '--json'])
    expect(dis.json).toMatchObject({ ok: true, data: { enabled: false, state: 'disabled', pid: null } })

    const rm = await f.run(['ext', 'remove', 'my-extension', '--json'])
    expect(rm.json).toEqual({ ok: true, data: { name: 'my-extension', removed: true, osUserRemoved: true } })
    const gone = await f.run(['ext', 'enable', 'my-extension', '--json'])
    expect(gone.exitCode).toBe(3)
    expect(gone.json).toMatchObject({ ok: false, error: { code: 'E_EXT_NOT_FOUND' } })
  })
})
