import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ReplicationStatus } from '../../src/api/replication.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { freePort } from '../../src/platform/ports.js'
import { readPostmasterPid } from '../../src/postgres/pidfile.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Issue 10, item 8: a real kernel killed in the middle of `replica add` (test-only fault hook
 * MAGFLOCK_FAULT=replica-add:after-start, src/replication/fault.ts: the standby is cloned,
 * started and streaming, its slot exists, it is not registered yet). The next kernel rolls
 * the add back (standby stopped, slot dropped, directory gone) and the retry works.
 */
describe('chaos: kill -9 of the kernel during replica add', () => {
  let f: Flock | undefined
  afterAll(async () => {
    await f?.destroy()
  })

  it('the next kernel rolls the half-done add back and the retry succeeds', { timeout: 120_000 }, async () => {
    const fl = await createFlock()
    f = fl
    writeFileSync(
      path.join(fl.projectDir, 'magflock.yaml'),
      `postgres:\n  port: ${fl.pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${fl.metricsPort}\nreplication:\n  basePort: ${await freePort()}\n`,
    )
    const fault = { MAGFLOCK_FAULT: 'replica-add:after-start' }
    const start = await fl.run(['kernel', 'start', '--json'], { env: fault })
    expect(start.exitCode, start.stdout + start.stderr).toBe(0)
    const kernel = await readKernelInfo(fl.layout)
    const add = await fl.run(['replica', 'add', 'r1', '--json'])
    expect(add.exitCode).not.toBe(0)
    // Still alive long after the add returned: the add failed before the fault point, and says why.
    await waitFor(`the kernel to die at the fault point (replica add said: ${(add.stdout + add.stderr).trim().slice(0, 1500)})`, async () => !isProcessAliveSync(kernel!.pid), 60_000)

    // What it left: a running standby nobody supervises, its data dir, and a slot on the primary.
    const standby = await readPostmasterPid(fl.layout.dataDir('r1'))
    expect(standby && isProcessAliveSync(standby.pid)).toBe(true)
    const slots = async () => (await fl.sql<{ slot_name: string }>('postgres', 'select slot_name from pg_replication_slots order by 1')).map((r) => r.slot_name)
    expect(await slots()).toContain('r1')

    const again = await fl.run(['kernel', 'start', '--json'])
    expect(again.exitCode, again.stdout + again.stderr).toBe(0)
    await waitFor('the add to be rolled back', async () => !existsSync(fl.layout.instanceDir('r1')) && !(await slots()).includes('r1'), 60_000)
    expect(isProcessAliveSync(standby!.pid)).toBe(false)
    const list = await fl.run<ReplicationStatus>(['replica', 'list', '--json'])
    expect(list.json?.ok && list.json.data.members.map((m) => m.name)).not.toContain('r1')

    const retry = await fl.run<{ name: string; state: string }>(['replica', 'add', 'r1', '--json'])
    expect(retry.exitCode, retry.stdout + retry.stderr).toBe(0)
    expect(retry.json?.ok && retry.json.data).toMatchObject({ name: 'r1', state: 'streaming' })
    expect(existsSync(path.join(fl.layout.instanceDir('r1'), 'adding.json'))).toBe(false)
  })

  it('a leftover directory that no add marked is refused with E_REPLICA_DIR_EXISTS, never E_SWITCHOVER_TARGET, and left alone', async () => {
    const fl = f!
    // r1 is a member now; a directory for "r2" with a data dir but no marker (made by hand).
    const { mkdirSync } = await import('node:fs')
    mkdirSync(fl.layout.dataDir('r2'), { recursive: true })
    writeFileSync(path.join(fl.layout.dataDir('r2'), 'PG_VERSION'), '15\n')
    const r = await fl.run(['replica', 'add', 'r2', '--json'])
    expect(r.json?.ok === false && r.json.error.code).toBe('E_REPLICA_DIR_EXISTS')
    expect(r.json?.ok === false && r.json.error.hint).toContain('doctor --repair')
    expect(existsSync(path.join(fl.layout.dataDir('r2'), 'PG_VERSION'))).toBe(true)
  })
})
