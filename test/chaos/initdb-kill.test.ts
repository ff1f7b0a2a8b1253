import { promises as fsp } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { spawnLong } from '../../src/platform/process.js'
import { initInstance, initializingDir, instanceState, startInstance, stopInstance, type InstanceSpec } from '../../src/postgres/instance.js'
import { until } from '../integration/postgres/events.js'
import { killLeftovers, query, testSpec } from '../integration/postgres/spec.js'

const PASSWORD = 'initdb-chaos-pw'

/** The pid of the initdb writing into `dir`, once it has started filling it. */
async function initdbPid(dir: string): Promise<number | undefined> {
  for (const e of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue
    const cmd = await fsp.readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')
    if (cmd.includes('initdb') && cmd.includes(dir)) return Number(e)
  }
  return undefined
}

async function hasContent(dir: string): Promise<boolean> {
  return (await fsp.readdir(dir).catch(() => [] as string[])).length > 0
}

describe('chaos: kill -9 of initdb', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterAll(async () => {
    for (const c of cleanups) await c()
  })

  async function fresh(): Promise<InstanceSpec> {
    const t = await testSpec()
    cleanups.push(async () => {
      await stopInstance(t.spec, 'immediate').catch(() => undefined)
      await killLeftovers(t.spec.dataDir)
      t.cleanup()
    })
    return t.spec
  }

  it('initInstance fails with E_INSTANCE_INIT_FAILED, leaves no data dir, and the next initInstance succeeds', async () => {
    const spec = await fresh()
    const dir = initializingDir(spec)
    const pending = initInstance(spec, PASSWORD).then(
      () => undefined,
      (e: unknown) => e,
    )
    let pid: number | undefined
    await until(async () => (pid = await initdbPid(dir)) !== undefined && (await hasContent(dir)), 'initdb to be writing')
    process.kill(pid!, 'SIGKILL')
    const err = await pending
    expect(err).toMatchObject({ code: 'E_INSTANCE_INIT_FAILED' })
    expect(String((err as Error).message)).not.toContain(PASSWORD)
    expect(await instanceState(spec)).toBe('absent')
    await expect(startInstance(spec)).rejects.toMatchObject({ code: 'E_INSTANCE_NOT_INITIALIZED' })

    await initInstance(spec, PASSWORD)
    expect(await instanceState(spec)).toBe('ready')
    const h = await startInstance(spec)
    expect((await query<{ data_checksums: string }>(spec, PASSWORD, 'SHOW data_checksums')).rows[0]).toEqual({ data_checksums: 'on' })
    await h.stop('fast')
  })

  it('a data.initializing left by a dead kernel is never started; initInstance stops its orphaned initdb and redoes it', async () => {
    const spec = await fresh()
    const dir = initializingDir(spec)
    // What a kernel killed mid-init leaves behind: a half-filled data.initializing, and the
    // initdb it had spawned still running as an orphan (or already dead: both must be handled).
    await fsp.mkdir(spec.instanceDir, { recursive: true })
    await fsp.mkdir(dir, { mode: 0o700 })
    if (spec.runAs) {
      await fsp.chown(spec.instanceDir, spec.runAs.uid, spec.runAs.gid)
      await fsp.chown(dir, spec.runAs.uid, spec.runAs.gid)
    }
    const child = spawnLong(spec.bins.tool('initdb'), ['-D', dir, '-U', spec.superuser, '--auth=trust'], { runAs: spec.runAs, detached: false })
    await until(async () => (await hasContent(dir)) && (await fsp.stat(`${dir}/global`).then(() => true, () => false)), 'initdb to be writing')

    expect(await instanceState(spec)).toBe('initializing-leftover')
    await expect(startInstance(spec)).rejects.toMatchObject({ code: 'E_INSTANCE_NOT_INITIALIZED' })
    expect(await fsp.stat(spec.dataDir).then(() => true, () => false)).toBe(false)

    await initInstance(spec, PASSWORD)
    expect(await instanceState(spec)).toBe('ready')
    expect(await fsp.stat(dir).then(() => true, () => false)).toBe(false)
    const orphan = await Promise.resolve(child)
    expect(orphan.signal === 'SIGKILL' || orphan.exitCode !== undefined).toBe(true)
    const h = await startInstance(spec)
    // The redone cluster has SCRAM auth, not the leftover's trust: a wrong password is refused.
    await expect(query(spec, 'wrong', 'select 1')).rejects.toMatchObject({ code: '28P01' })
    expect((await query<{ x: number }>(spec, PASSWORD, 'select 1 as x')).rows[0]?.x).toBe(1)
    await h.stop('fast')
  })
})
