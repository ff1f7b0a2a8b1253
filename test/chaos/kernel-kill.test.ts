import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import { execa } from 'execa'
import { createFlock, type Flock } from '../helpers/flock.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import type { StatusOutput } from '../../src/api/core.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { waitFor } from '../helpers/wait.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'


describe('chaos: kill -9 of the kernel', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('Postgres keeps serving, and the next up re-adopts the same postmaster', async () => {
    const c = await f.connect()
    await c.query('create table chaos(x int); insert into chaos values (1)')
    const pm = await f.postmasterPid()
    const info = await readKernelInfo(f.layout)
    expect(info && pm).toBeTruthy()
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid))

    // Postgres still answers on the connection opened before, and on a new one.
    await c.query('insert into chaos values (2)')
    await c.end()
    const c2 = await f.connect()
    expect((await c2.query('select count(*)::int as n from chaos')).rows[0].n).toBe(2)
    await c2.end()

    // kernel.json and the socket are stale now; status says so instead of hanging.
    const s = await f.run(['status', '--json'])
    expect(s.exitCode).toBe(7)

    const up = await f.run<StatusOutput & { launched: boolean; cleaned: string[] }>(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    expect(up.json?.ok && up.json.data.cleaned.join(' ')).toContain('kernel.json')
    const primary = up.json?.ok ? up.json.data.instances[0] : undefined
    expect(primary).toMatchObject({ pid: pm, adopted: true, state: 'running' })
    expect(await f.postmasterPid()).toBe(pm)
  })

  it('kill -9 of the postmaster: the kernel restarts it, data intact', async () => {
    const pm = await f.postmasterPid()
    process.kill(pm!, 'SIGKILL')
    const s = await waitFor('a new postmaster', async () => {
      const r = await f.run<StatusOutput>(['status', '--json'])
      const p = r.json?.ok ? r.json.data.instances[0] : undefined
      return p && p.state === 'running' && p.pid !== pm ? p : undefined
    })
    expect(s.restarts).toBeGreaterThanOrEqual(1)
    const c = await f.connect()
    expect((await c.query('select count(*)::int as n from chaos')).rows[0].n).toBe(2)
    await c.end()
    const m = await f.run<{ text: string }>(['metrics', '--json'])
    expect(m.json?.ok && m.json.data.text).toMatch(new RegExp(`magflock_instance_restarts_total\\{instance="${FIRST_INSTANCE}"\\} [1-9]`))
  })
})

describe('chaos: kill -9 during the first up (initdb running)', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('never uses the half-initialised data dir; the next up recovers', async () => {
    const child = execa(NODE, [RUN_JS, 'kernel', 'start', '--foreground'], { cwd: f.projectDir, env: f.env, reject: false, stdin: 'ignore' })
    const leftover = `${f.layout.instanceDir(FIRST_INSTANCE)}/data.initializing`
    await waitFor('initdb to start writing', async () => existsSync(`${leftover}/PG_VERSION`) || existsSync(`${leftover}/base`) || undefined, 60_000)
    // Kill the kernel and everything in its process group (initdb included).
    child.kill('SIGKILL')
    await child
    await execa('pkill', ['-9', '-f', `initdb.*${f.projectDir}`], { reject: false })
    expect(existsSync(f.layout.dataDir(FIRST_INSTANCE))).toBe(false)

    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const c = await f.connect()
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1)
    await c.end()
  })
})
