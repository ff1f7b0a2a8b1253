import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initInstance, pgIsReady, stopInstance, type InstanceSpec } from '../../../src/postgres/instance.js'
import { isProcessAlive } from '../../../src/postgres/pidfile.js'
import { InstanceSupervisor, type SupervisorStatus } from '../../../src/postgres/supervisor.js'
import { recordingEvents, silentLog, until } from './events.js'
import { killLeftovers, query, testSpec } from './spec.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const PASSWORD = 'outlive-pw'

describe('Postgres outlives the process that supervises it', () => {
  let spec: InstanceSpec
  let cleanup: () => void
  beforeAll(async () => {
    const t = await testSpec()
    spec = t.spec
    cleanup = t.cleanup
    await initInstance(spec, PASSWORD)
  })
  afterAll(async () => {
    await stopInstance(spec, 'immediate').catch(() => undefined)
    await killLeftovers(spec.dataDir)
    cleanup()
  })

  it('keeps serving after kill -9 of the kernel-like parent\'s whole process group, and a new supervisor adopts the same pid', async () => {
    const { bins: _b, runAs: _r, log: _l, ...plain } = spec
    const child = spawn(
      process.execPath,
      ['--import', path.join(here, 'fixtures/ts-hook.mjs'), path.join(here, 'fixtures/supervise.ts'), JSON.stringify(plain)],
      // Its own process group, so the whole group can be killed the way a terminal's Ctrl-C or
      // a `kill -9 -<pgid>` would hit a kernel and everything in its group.
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env }, detached: true },
    )
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    await until(() => out.includes('\n'), 'the child supervisor to report')
    const status = JSON.parse(out.split('\n')[0]!) as SupervisorStatus
    expect(status.state).toBe('running')
    const pid = status.pid!

    const exited = new Promise((r) => child.once('exit', r))
    process.kill(-child.pid!, 'SIGKILL')
    await exited
    expect(await isProcessAlive(pid)).toBe(true)
    expect(await pgIsReady(spec)).toBe('running')
    expect((await query<{ x: number }>(spec, PASSWORD, 'select 1 as x')).rows[0]?.x).toBe(1)

    const sup = new InstanceSupervisor(spec, { log: silentLog, events: recordingEvents(), restart: { policy: 'always' } })
    await sup.start()
    expect(sup.status()).toMatchObject({ state: 'running', pid, adopted: true })
    await sup.stop({ keepRunning: false })
    expect(await isProcessAlive(pid)).toBe(false)
  })
})
