import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, describe, expect, it } from 'vitest'
import { readKernelInfo } from '../../src/kernel/state.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { createFlock, instanceNames, readAdminToken, type Flock } from '../helpers/flock.js'
import { freePort } from '../../src/platform/ports.js'
import { descendants, environOf, readProc, type Proc } from '../helpers/procs.js'

/**
 * Issue 10, item 6: every process the kernel starts (postgres and its backends, replicas,
 * pg_receivewal, pg_basebackup, …) gets an allow-listed environment: no MAGFLOCK_* variable
 * (master key, token), no PGPASSWORD, no secret value anywhere in it. Needs the built CLI.
 */
function readPostmasterPidSync(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    return undefined
  }
}

describe('security: children of the kernel never see our secrets', () => {
  let f: Flock | undefined
  afterAll(async () => {
    await f?.destroy()
  })

  it('no MAGFLOCK_* variable and no password in /proc/<pid>/environ of any descendant', async () => {
    const flock = await createFlock()
    writeFileSync(
      path.join(flock.projectDir, 'magflock.yaml'),
      `postgres:\n  port: ${flock.pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${flock.metricsPort}\nreplication:\n  basePort: ${await freePort()}\n`,
    )
    f = flock
    // The kernel is started with a real token in MAGFLOCK_TOKEN (the admin token of a first boot).
    const first = await flock.run(['kernel', 'start', '--json'])
    expect(first.exitCode, first.stdout + first.stderr).toBe(0)
    const token = readAdminToken(flock)
    expect((await flock.run(['down', '--json'])).exitCode).toBe(0)
    for (const args of [['kernel', 'start', '--json'], ['replica', 'add', '--json']]) {
      const r = await flock.run(args, { env: { MAGFLOCK_TOKEN: token } })
      expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    }
    // Enough data that pg_basebackup runs for a moment.
    await flock.sql('postgres', "create table filler as select g, md5(g::text) || md5(random()::text) as pad from generate_series(1, 500000) g")
    const list = await flock.run<{ secrets: Array<{ name: string }> }>(['secrets', 'list', '--json'])
    expect(list.json?.ok, list.stdout).toBe(true)
    const secretValues = [token, flock.env.MAGFLOCK_MASTER_KEY!]
    for (const s of list.json?.ok ? list.json.data.secrets : []) {
      const g = await flock.run<{ value: string }>(['secrets', 'get', s.name, '--reveal', '--json'])
      if (g.json?.ok) secretValues.push(g.json.data.value)
    }
    expect(secretValues.length).toBeGreaterThan(3) // the superuser's and the replication role's passwords
    const kernelPid = (await readKernelInfo(flock.layout))!.pid
    // The kernel itself holds the key (it must): the probe would catch a leak if the filter broke.
    expect(Object.keys(environOf(kernelPid) ?? {})).toContain('MAGFLOCK_MASTER_KEY')

    const backup = execa(NODE, [RUN_JS, 'backup', 'create', '--type', 'physical', '--json'], { cwd: flock.projectDir, env: flock.env, reject: false })
    const seen = new Map<number, Proc>()
    const leaks: string[] = []
    const inspect = () => {
      // The kernel's descendants, and every postmaster of the flock with its children (one
      // started through pg_ctl is not the kernel's descendant).
      const pms = instanceNames(flock).map((n) => readPostmasterPidSync(flock.layout.dataDir(n))).filter((x): x is number => x !== undefined)
      const procs = [...descendants(kernelPid), ...pms.map((pid) => readProc(pid)).filter((x): x is Proc => x !== undefined), ...pms.flatMap((pid) => descendants(pid))]
      for (const p of procs) {
        const env = environOf(p.pid)
        if (!env) continue
        seen.set(p.pid, p)
        for (const [k, v] of Object.entries(env)) {
          if (k.startsWith('MAGFLOCK_') || k === 'PGPASSWORD') leaks.push(`${p.tool}[${p.pid}] has ${k}`)
          for (const s of secretValues) if (s && v.includes(s)) leaks.push(`${p.tool}[${p.pid}] has a secret value in ${k}`)
        }
      }
    }
    let sawBasebackup = false
    let done = false
    void backup.finally(() => (done = true))
    while (!done) {
      inspect()
      if ([...seen.values()].some((p) => p.tool === 'pg_basebackup')) sawBasebackup = true
      await new Promise((r) => setTimeout(r, 5))
    }
    const res = await backup
    expect(res.exitCode, String(res.stdout)).toBe(0)
    inspect()
    const tools = new Set([...seen.values()].map((p) => p.tool))
    expect(tools.has('postgres'), [...tools].join(',')).toBe(true)
    expect(tools.has('pg_receivewal'), [...tools].join(',')).toBe(true)
    expect(sawBasebackup, [...tools].join(',')).toBe(true)
    // Two postmasters at least (primary and replica), each inspected.
    expect([...seen.values()].filter((p) => p.tool === 'postgres' && p.argv.includes('-D')).length).toBeGreaterThanOrEqual(2)
    expect(leaks).toEqual([])
  })
})
