import { renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusOutput } from '../../src/api/core.js'
import type { ReplicationStatus } from '../../src/api/replication.js'
import type { RepairResult } from '../../src/doctor/repair.js'
import { createReplicatedFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Issue 10, item 10: a corrupt or lost topology.json must not orphan a running replica. The
 * E_CORRUPT_STATE hint leads to `magflock doctor --repair`, which rebuilds the topology from
 * the instance directories and running postmasters; `up` then supervises the replica again.
 * A real replica (built CLI, detached kernel).
 */
describe('chaos: topology.json corrupt or moved aside, with a running replica', () => {
  let f: Flock
  let replica: string
  let primary: string
  const topo = () => path.join(f.stateDir, 'topology.json')
  beforeAll(async () => {
    const rf = await createReplicatedFlock()
    f = rf.f
    const l = await rf.list()
    primary = l.members.find((m) => m.role === 'primary')!.name
    replica = l.members.find((m) => m.role === 'replica')!.name
  })
  afterAll(async () => {
    await f?.destroy()
  })

  async function expectReplicaSupervised(): Promise<void> {
    const l = await f.run<ReplicationStatus>(['replica', 'list', '--json'])
    expect(l.json?.ok && l.json.data.members.map((m) => `${m.name}:${m.role}`)).toEqual([`${primary}:primary`, `${replica}:replica`])
    await waitFor('the replica to stream', async () => {
      const r = await f.run<ReplicationStatus>(['replica', 'list', '--json'])
      return r.json?.ok && r.json.data.members.find((m) => m.name === replica)?.state === 'streaming'
    }, 30_000)
    const s = await f.run<StatusOutput>(['status', '--json'])
    expect(s.json?.ok && s.json.data.instances.find((i) => i.name === replica)).toMatchObject({ role: 'replica', state: 'running' })
  }

  it('refuses to repair while the kernel runs', async () => {
    const r = await f.run(['doctor', '--repair', '--json'])
    expect(r.exitCode).toBe(5)
    expect(r.json?.ok === false && r.json.error.code).toBe('E_REPAIR_KERNEL_RUNNING')
  })

  it('a corrupt topology.json: the hint names doctor --repair, which rebuilds it with the replica', { timeout: 120_000 }, async () => {
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    writeFileSync(topo(), '{"instances": [garbage')
    const up = await f.run(['up', '--json'])
    expect(up.exitCode).not.toBe(0)
    expect(up.json?.ok === false && up.json.error.code).toBe('E_CORRUPT_STATE')
    expect(up.json?.ok === false && up.json.error.hint).toContain('magflock doctor --repair')

    const dry = await f.run<{ repair: RepairResult }>(['doctor', '--repair', '--dry-run', '--json'])
    expect(dry.json?.ok && dry.json.data.repair.repaired).toBe(false)
    const r = await f.run<{ repair: RepairResult }>(['doctor', '--repair', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    if (!r.json?.ok) return
    expect(r.json.data.repair).toMatchObject({ before: 'corrupt', repaired: true })
    expect(r.json.data.repair.movedAside).toMatch(/topology\.json\.corrupt-/)
    expect(r.json.data.repair.instances.map((i) => `${i.name}:${i.role}:${i.running}`)).toEqual([`${primary}:primary:true`, `${replica}:replica:true`])

    const again = await f.run(['up', '--json'])
    expect(again.exitCode, again.stdout + again.stderr).toBe(0)
    await expectReplicaSupervised()
  })

  it('a topology.json moved aside: up refuses (it would orphan the replica) and points at doctor --repair', { timeout: 120_000 }, async () => {
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    renameSync(topo(), `${topo()}.aside`)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode).not.toBe(0)
    expect(up.json?.ok === false && up.json.error.code).toBe('E_TOPOLOGY_MISSING')
    expect(up.json?.ok === false && up.json.error.hint).toContain('magflock doctor --repair')
    const r = await f.run<{ repair: RepairResult }>(['doctor', '--repair', '--json'])
    expect(r.json?.ok && r.json.data.repair).toMatchObject({ before: 'missing', repaired: true, movedAside: null })
    const again = await f.run(['up', '--json'])
    expect(again.exitCode, again.stdout + again.stderr).toBe(0)
    await expectReplicaSupervised()
    // Nothing left to repair: a second run changes nothing.
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    const noop = await f.run<{ repair: RepairResult }>(['doctor', '--repair', '--json'])
    expect(noop.json?.ok && noop.json.data.repair).toMatchObject({ before: 'valid', repaired: false, changes: [] })
  })
})
