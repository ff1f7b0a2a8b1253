import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { createFlock, type Flock } from '../helpers/flock.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import type { StatusOutput } from '../../src/api/core.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'

type UpData = StatusOutput & { launched: boolean; adminTokenFile: string }

describe('magflock up / status / down (built CLI)', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('brings up a primary on a fresh state dir and reports it with --json', async () => {
    const r = await f.run<UpData>(['up', '--json'])
    expect(r.json, r.stderr).toMatchObject({ ok: true })
    if (!r.json?.ok) return
    expect(r.exitCode).toBe(0)
    expect(r.json.data.launched).toBe(true)
    const primary = r.json.data.instances.find((i) => i.role === 'primary')
    expect(primary).toMatchObject({ state: 'running', port: f.pgPort, host: '127.0.0.1', adopted: false })
    expect(primary?.url).not.toMatch(/:[^@/]*@/) // no password in the URL
    expect(statSync(f.layout.adminToken).mode & 0o777).toBe(0o600)
    expect(statSync(f.layout.dataDir(FIRST_INSTANCE)).mode & 0o777).toBe(0o700)
    expect(statSync(f.layout.socket).mode & 0o777).toBe(0o600)
  })

  it('accepts a write over TCP with the superuser password from the vault', async () => {
    const c = await f.connect()
    try {
      await c.query('create table e2e(x int); insert into e2e values (42)')
      const { rows } = await c.query('select x from e2e')
      expect(rows).toEqual([{ x: 42 }])
      const { rows: cs } = await c.query("select current_setting('data_checksums') as v, current_setting('password_encryption') as p")
      expect(cs[0]).toEqual({ v: 'on', p: 'scram-sha-256' })
    } finally {
      await c.end()
    }
  })

  it('status --json has the documented shape', async () => {
    const r = await f.run<StatusOutput>(['status', '--json'])
    expect(r.exitCode).toBe(0)
    expect(r.json).toMatchObject({
      ok: true,
      data: {
        kernel: { env: 'development', stateDir: f.stateDir },
        components: expect.arrayContaining([expect.objectContaining({ name: 'postgres', state: 'running', healthy: true })]),
        instances: [expect.objectContaining({ name: FIRST_INSTANCE, role: 'primary', state: 'running' })],
        primaryUrl: expect.stringContaining('target_session_attrs=read-write'),
      },
    })
  })

  it('a second up is idempotent: same kernel, same postmaster', async () => {
    const before = await f.postmasterPid()
    const r = await f.run<UpData>(['up', '--json'])
    expect(r.exitCode).toBe(0)
    expect(r.json?.ok && r.json.data.launched).toBe(false)
    expect(await f.postmasterPid()).toBe(before)
  })

  it('never prints the superuser password or the admin token', async () => {
    const pw = await f.superuserPassword()
    const token = readFileSync(f.layout.adminToken, 'utf8').trim()
    for (const args of [['status', '--json'], ['up', '--json'], ['status'], ['kernel', 'logs', '-n', '1000']]) {
      const r = await f.run(args)
      expect(r.stdout + r.stderr).not.toContain(pw)
      expect(r.stdout + r.stderr).not.toContain(token)
    }
    const log = readFileSync(f.layout.kernelLog, 'utf8')
    expect(log).not.toContain(pw)
    expect(log).not.toContain(token)
  })

  it('down stops Postgres and the kernel', async () => {
    const pm = await f.postmasterPid()
    const r = await f.run<{ kernelStopped: boolean }>(['down', '--json'])
    expect(r.json).toMatchObject({ ok: true, data: { kernelStopped: true } })
    expect(pm && isProcessAliveSync(pm)).toBe(false)
    const s = await f.run(['status', '--json'])
    expect(s.exitCode).toBe(7)
    expect(s.json).toMatchObject({ ok: false, error: { code: 'E_KERNEL_NOT_RUNNING' } })
  })

  it('up after down starts the same data again (the row is still there)', async () => {
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const c = await f.connect()
    try {
      expect((await c.query('select x from e2e')).rows).toEqual([{ x: 42 }])
    } finally {
      await c.end()
    }
    // Started by this kernel, not re-adopted: status does not say "(adopted)".
    const human = await f.run(['status'])
    expect(human.stdout).toMatch(new RegExp(`^primary +${FIRST_INSTANCE} +running`, 'm'))
    expect(human.stdout).not.toContain('(adopted)')
  })

  it('a state dir from before the pgN names keeps its first instance called primary', async () => {
    expect((await f.run(['down', '--json'])).exitCode).toBe(0)
    renameSync(f.layout.instanceDir(FIRST_INSTANCE), f.layout.instanceDir('primary'))
    const topo = path.join(f.stateDir, 'topology.json')
    writeFileSync(topo, readFileSync(topo, 'utf8').replaceAll(`"${FIRST_INSTANCE}"`, '"primary"'))
    const r = await f.run<UpData>(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect(r.json?.ok && r.json.data.instances.map((i) => `${i.name}:${i.role}:${i.port}`)).toEqual([`primary:primary:${f.pgPort}`])
    expect((await f.sql<{ x: number }>('postgres', 'select x from e2e'))[0]?.x).toBe(42)
    // The same without topology.json (older still): instances/primary is adopted under its name.
    expect((await f.run(['down', '--json'])).exitCode).toBe(0)
    rmSync(topo)
    const again = await f.run<UpData>(['up', '--json'])
    expect(again.json?.ok && again.json.data.instances.map((i) => i.name)).toEqual(['primary'])
    expect((await f.sql<{ x: number }>('postgres', 'select x from e2e'))[0]?.x).toBe(42)
  })
})

describe('magflock CLI errors (built CLI)', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('an unknown flag is E_USAGE with exit 2 and a small JSON envelope', async () => {
    const r = await f.run(['status', '--bogus', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_USAGE' } })
    expect(r.stdout.length).toBeLessThan(1000)
    expect(r.stdout).not.toContain(process.env.HOME ?? '/root')
  })

  it('status without a kernel is E_KERNEL_NOT_RUNNING (exit 7) with a hint', async () => {
    const r = await f.run(['status'])
    expect(r.exitCode).toBe(7)
    expect(r.stderr).toContain('E_KERNEL_NOT_RUNNING')
    expect(r.stderr).toContain('Hint:')
  })

  it('--version answers', async () => {
    const r = await f.run(['--version'])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toMatch(/magflock\/\d+\.\d+\.\d+/)
  })
})
