import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { createFlock, type Flock } from '../helpers/flock.js'
import { ROOT } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { readPostmasterPid } from '../../src/postgres/pidfile.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { LAUNCH_RECIPE_FILE } from '../../src/postgres/early-start.js'
import type { StatusOutput } from '../../src/api/core.js'

// The kernel's first stage (src/postgres/early-start.ts): the detached kernel spawns the
// postmasters of a cleanly stopped flock before its bundle loads, and the postgres component
// takes them over as its own children. These tests drive the built CLI and the real kernel.

type Log = { msg?: string; early?: boolean; instance?: string; instances?: string[] }

function kernelLog(f: Flock, from: number): Log[] {
  const text = readFileSync(f.layout.kernelLog).subarray(from).toString('utf8')
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Log)
}
const logSize = (f: Flock) => (existsSync(f.layout.kernelLog) ? statSync(f.layout.kernelLog).size : 0)
const earlyStarted = (lines: Log[]) => lines.some((l) => l.msg === 'started postgres' && l.early === true)
const primaryOf = (s: StatusOutput) => s.instances.find((i) => i.role === 'primary')!

describe('kernel first stage: Postgres spawned before the kernel loads', () => {
  let f: Flock
  let recipe: string
  beforeAll(async () => {
    f = await createFlock()
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stderr).toBe(0)
    recipe = path.join(f.stateDir, LAUNCH_RECIPE_FILE)
  })
  afterAll(async () => {
    await f?.destroy()
  })

  const down = async () => {
    const r = await f.run(['down', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
  }
  const up = async () => {
    const r = await f.run<StatusOutput>(['up', '--json'])
    expect(r.json, r.stderr).toMatchObject({ ok: true })
    return (r.json as { data: StatusOutput }).data
  }

  it('a warm up takes the early postmaster as its own child (not adopted), and down stops it', async () => {
    expect(JSON.parse(readFileSync(recipe, 'utf8'))).toMatchObject({ postgres: expect.stringMatching(/\/postgres$/) })
    expect(statSync(recipe).mode & 0o777).toBe(0o600)
    await down()
    const from = logSize(f)
    const s = await up()
    const lines = kernelLog(f, from)
    expect(earlyStarted(lines), JSON.stringify(lines.map((l) => l.msg))).toBe(true)
    const p = primaryOf(s)
    expect(p).toMatchObject({ state: 'running', adopted: false })
    expect(p.pid).toBe(await f.postmasterPid())
    expect(await f.sql('postgres', 'select 1 as one')).toEqual([{ one: 1 }])
    await down()
    expect(isProcessAliveSync(p.pid!), 'postmaster stopped by down').toBe(false)
  })

  it('a changed postgres setting restarts the early postmaster, so the new value is in effect', async () => {
    const yaml = path.join(f.projectDir, 'magflock.yaml')
    const before = readFileSync(yaml, 'utf8')
    writeFileSync(yaml, before.replace('    fsync: "off"\n', '    fsync: "off"\n    work_mem: "7MB"\n'))
    try {
      const from = logSize(f)
      const s = await up()
      const lines = kernelLog(f, from)
      expect(lines.some((l) => /does not match the configuration/.test(l.msg ?? ''))).toBe(true)
      expect(primaryOf(s)).toMatchObject({ state: 'running', adopted: false })
      expect(await f.sql('postgres', 'show work_mem')).toEqual([{ work_mem: '7MB' }])
    } finally {
      writeFileSync(yaml, before)
    }
    await down()
  })

  it('a recipe naming another postgres binary is not used: the kernel stops that postmaster and starts its own', async () => {
    const real = JSON.parse(readFileSync(recipe, 'utf8')) as { postgres: string }
    const alt = path.join(f.projectDir, 'altbin')
    mkdirSync(alt, { mode: 0o755 })
    chmodSync(f.projectDir, 0o755)
    symlinkSync(real.postgres, path.join(alt, 'postgres'))
    writeFileSync(recipe, JSON.stringify({ ...real, postgres: path.join(alt, 'postgres') }), { mode: 0o600 })
    const from = logSize(f)
    const s = await up()
    const lines = kernelLog(f, from)
    expect(lines.some((l) => /does not match the configuration/.test(l.msg ?? ''))).toBe(true)
    expect(primaryOf(s)).toMatchObject({ state: 'running', adopted: false })
    expect(JSON.parse(readFileSync(recipe, 'utf8'))).toMatchObject({ postgres: real.postgres })
    await down()
  })

  it('a recipe others may write is ignored (no early spawn) and up works as before', async () => {
    chmodSync(recipe, 0o666)
    const from = logSize(f)
    const s = await up()
    expect(earlyStarted(kernelLog(f, from))).toBe(false)
    expect(primaryOf(s)).toMatchObject({ state: 'running', adopted: false })
    await down()
    chmodSync(recipe, 0o600)
  })

  it('a boot that fails after the early spawn leaves no postmaster running', async () => {
    const from = logSize(f)
    const pgLog = f.layout.instanceLog(primaryName(f))
    const pgFrom = statSync(pgLog).size
    const bad = await f.run(['up', '--json'], { env: { MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') } })
    expect(bad.exitCode).not.toBe(0)
    expect(bad.json).toMatchObject({ ok: false })
    // Stopped before `up` reported the failure: nothing runs now.
    const pf = await readPostmasterPid(f.layout.dataDir(primaryName(f))).catch(() => undefined)
    expect(pf === undefined || !isProcessAliveSync(pf.pid), 'no postmaster left behind').toBe(true)
    await waitFor('the failure in kernel.log', async () => kernelLog(f, from).some((l) => l.msg === 'kernel failed to start'), 30_000)
    // The first stage did spawn one for that boot (its lines in postgres.log), which was stopped.
    expect(readFileSync(pgLog).subarray(pgFrom).toString('utf8')).toMatch(/starting PostgreSQL[\s\S]*shutdown/)
    const s = await up()
    expect(primaryOf(s)).toMatchObject({ state: 'running' })
    await down()
  })

  it('a kernel killed during start-up leaves its early postmaster, which the next up adopts', async () => {
    const info = JSON.parse(readFileSync(path.join(f.stateDir, 'topology.json'), 'utf8')) as { instances: Array<{ name: string; role: string }> }
    const name = info.instances.find((i) => i.role === 'primary')!.name
    const kernel = spawn(path.join(ROOT, 'node_modules/.bin/node'), [path.join(ROOT, 'dist/daemon/entry.js'), '--state-dir', f.stateDir], {
      cwd: f.projectDir,
      env: { ...process.env, ...f.env },
      stdio: 'ignore',
      detached: true,
    })
    const early = await waitFor('the early postmaster', async () => (await readPostmasterPid(f.layout.dataDir(name)).catch(() => undefined))?.pid)
    process.kill(kernel.pid!, 'SIGKILL')
    await waitFor('the killed kernel to exit', async () => !isProcessAliveSync(kernel.pid!))
    expect(isProcessAliveSync(early)).toBe(true)
    const s = await up()
    expect(primaryOf(s)).toMatchObject({ state: 'running', pid: early, adopted: true })
    expect(await f.sql('postgres', 'select 2 as two')).toEqual([{ two: 2 }])
  })

  it('with Postgres already running (kernel stopped, Postgres kept) the first stage does nothing and up adopts it', async () => {
    const before = await f.postmasterPid()
    const stop = await f.run(['kernel', 'stop', '--json'])
    expect(stop.exitCode, stop.stderr).toBe(0)
    expect(isProcessAliveSync(before!)).toBe(true)
    const from = logSize(f)
    const s = await up()
    expect(earlyStarted(kernelLog(f, from))).toBe(false)
    expect(primaryOf(s)).toMatchObject({ state: 'running', pid: before, adopted: true })
  })
})

function primaryName(f: Flock): string {
  const t = JSON.parse(readFileSync(path.join(f.stateDir, 'topology.json'), 'utf8')) as { instances: Array<{ name: string; role: string }> }
  return t.instances.find((i) => i.role === 'primary')!.name
}
