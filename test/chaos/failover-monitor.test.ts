import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { InMemoryLocks } from '../../src/kernel/locks.js'
import { readPostmasterPid, processesInDataDir } from '../../src/postgres/pidfile.js'
import { createReplica, promote, setSyncStandbys } from '../../src/replication/actions.js'
import { fence, readFence } from '../../src/replication/fence.js'
import { MemoryLeadership } from '../../src/replication/leadership.js'
import { FailoverMonitor } from '../../src/replication/monitor.js'
import { clientConfig } from '../../src/replication/pg.js'
import { primaryStatus } from '../../src/replication/status.js'
import { tempDir } from '../helpers/tmp.js'
import { managerFor, memoryRegistry, q, SplitBrainHunter, startFlock, waitFor, Writer, type Flock } from '../integration/replication/harness.js'

/**
 * kill -9 of the primary's postmaster while a writer loops, with its data dir made unable to
 * start again: the monitor must fence it, promote the best replica, repoint the other, and the
 * writer must go on against the new primary; a hunter samples every node all along and fails
 * the test if two of them ever accept writes at the same moment.
 */
async function scenario(sync: boolean): Promise<void> {
  const flocks: Flock[] = []
  const tmps: Array<{ cleanup(): void }> = []
  let monitor: FailoverMonitor | undefined
  const hunter: { h?: SplitBrainHunter } = {}
  const writer: { w?: Writer } = {}
  try {
    const f = await startFlock()
    flocks.push(f)
    await q(f, f.primary, 'create table w(seq int primary key)')
    const r1 = await f.newNode('r1')
    const r2 = await f.newNode('r2')
    await createReplica(f.env, f.primary, r1, { noSync: true })
    await createReplica(f.env, f.primary, r2, { noSync: true })
    const state = tempDir('mf-repl-state-')
    tmps.push(state)
    const registry = memoryRegistry(f, { p0: 'primary', r1: 'replica', r2: 'replica' })
    const events: Array<{ type: string; payload: unknown }> = []
    const mgr = managerFor(f, registry, state.dir, events)
    await mgr.state.update((s) => {
      s.replicas.r1 = { sync: false, addedAt: '' }
      s.replicas.r2 = { sync, addedAt: '' }
    })
    if (sync) {
      // r2 is the synchronous standby: the monitor must pick it even if r1 were ahead.
      await setSyncStandbys(f.env, f.primary, ['r2'])
      await waitFor('r2 sync', async () => (await primaryStatus(clientConfig(f.env, f.primary))).senders.find((s) => s.name === 'r2')?.syncState === 'sync')
    }
    const locks = new InMemoryLocks()
    monitor = new FailoverMonitor({
      manager: mgr,
      leadership: new MemoryLeadership(`chaos-${sync}-${Date.now()}`, 'kernel'),
      locks,
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      config: () => ({ enabled: true, graceMs: 1000 }),
      supervised: false,
      intervalMs: 100,
      autoRejoin: true,
    })
    monitor.start()
    await waitFor('healthy', async () => monitor?.lastDecision()?.decision.sentence.startsWith('primary p0 is healthy'))

    hunter.h = new SplitBrainHunter(f)
    hunter.h.start()
    writer.w = new Writer(f, 'w', 20)
    writer.w.start()
    await waitFor('writes', async () => (writer.w?.acked.length ?? 0) > 30)

    // Kill the postmaster only (its backends are orphaned, as on a real crash) and make the
    // data dir unable to start again.
    const pm = await readPostmasterPid(f.primary.dataDir)
    expect(pm).toBeDefined()
    const tKill = Date.now()
    process.kill(pm!.pid, 'SIGKILL')
    await fsp.rename(path.join(f.primary.dataDir, 'global', 'pg_control'), path.join(f.primary.dataDir, 'global', 'pg_control.broken'))

    const firstWriteOnNew = await waitFor(
      'a write on the new primary',
      async () => {
        const w = writer.w!
        const idx = w.ackedAt.findIndex((t) => t > tKill + 50)
        return idx >= 0 && registry.roles.p0 === 'fenced' ? (w.ackedAt[idx] as number) : undefined
      },
      30_000,
    )
    const rtoMs = firstWriteOnNew - tKill
    const newPrimary = Object.entries(registry.roles).find(([, r]) => r === 'primary')?.[0]
    const other = newPrimary === 'r1' ? 'r2' : 'r1'
    if (sync) expect(newPrimary).toBe('r2')
    await waitFor('more writes', async () => (writer.w?.acked.length ?? 0) > (writer.w?.acked.findIndex((_, i) => (writer.w?.ackedAt[i] ?? 0) > tKill) ?? 0) + 20)
    await writer.w.stop()
    await hunter.h.stop()

    const np = f.nodes.find((n) => n.name === newPrimary)!
    const present = new Set((await q<{ seq: number }>(f, np, 'select seq from w')).map((r) => r.seq))
    const lost = writer.w.acked.filter((s) => !present.has(s))
    console.log(`[${sync ? 'sync' : 'async'}] RTO ${rtoMs} ms (kill → first acked write on ${newPrimary}); acked ${writer.w.acked.length}, lost ${lost.length}; hunter samples ${hunter.h.samples}`)
    console.log(monitor.history.join('\n'))

    expect(hunter.h.violations).toEqual([])
    expect(hunter.h.samples).toBeGreaterThan(20)
    if (sync) expect(lost).toEqual([])
    expect(monitor.history.some((s) => new RegExp(`^promote ${newPrimary}: primary p0 unreachable for \\d+\\.\\d s and cannot be restarted`).test(s))).toBe(true)
    // Fenced for certain: no process left in its data dir, marker and standby.signal present.
    expect(await processesInDataDir(f.primary.dataDir)).toEqual([])
    expect((await readFence(f.primary.instanceDir))?.newPrimary).toBe(newPrimary)
    // The other replica follows the new primary.
    await waitFor(`${other} streams from ${newPrimary}`, async () => (await primaryStatus(clientConfig(f.env, np))).senders.some((s) => s.name === other && s.state === 'streaming'))
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['failover.started', 'instance.fenced', 'failover.completed']))

    // pg_rewind cannot work on a data dir without pg_control: the automatic rejoin leaves it
    // fenced; the operator's rejoin re-clones it.
    await waitFor('auto-rejoin attempt', async () => monitor?.history.some((s) => s.startsWith('p0 stays fenced')))
    await monitor.stop()
    monitor = undefined
    const rj = await mgr.rejoin('p0', { allowReclone: true })
    expect(rj.method).toBe('reclone')
    expect(await readFence(f.primary.instanceDir)).toBeUndefined()
    expect(registry.roles.p0).toBe('replica')
    expect((await primaryStatus(clientConfig(f.env, np))).senders.find((s) => s.name === 'p0')?.state).toBe('streaming')
  } finally {
    await writer.w?.stop()
    await hunter.h?.stop()
    await monitor?.stop()
    for (const f of flocks) await f.cleanup()
    for (const t of tmps) t.cleanup()
  }
}

describe('failover monitor (chaos: kill -9 of the primary postmaster)', () => {
  afterAll(() => undefined)

  it('finishes a failover that a killed kernel left half-done (old primary fenced, replica promoted, registry stale)', async () => {
    const f = await startFlock()
    const state = tempDir('mf-repl-state-')
    let monitor: FailoverMonitor | undefined
    try {
      const r1 = await f.newNode('r1')
      await createReplica(f.env, f.primary, r1, { noSync: true })
      const registry = memoryRegistry(f, { p0: 'primary', r1: 'replica' })
      const mgr = managerFor(f, registry, state.dir)
      // What a kernel killed between "promote" and "record the new roles" leaves behind.
      await fence(f.env, f.primary, 'failover to r1')
      await promote(f.env, r1)
      monitor = new FailoverMonitor({
        manager: mgr,
        leadership: new MemoryLeadership(`half-${Date.now()}`, 'next-kernel'),
        locks: new InMemoryLocks(),
        log: { info: () => undefined, warn: () => undefined, error: () => undefined },
        config: () => ({ enabled: true, graceMs: 1000 }),
        supervised: false,
        intervalMs: 100,
        autoRejoin: false,
      })
      monitor.start()
      await waitFor('r1 registered as primary', async () => registry.roles.r1 === 'primary' && monitor?.lastDecision()?.decision.sentence.startsWith('primary r1 is healthy'))
      expect(monitor.history).toContain('finish failover to r1: primary p0 is fenced and r1 already accepts writes')
      expect(registry.roles.p0).toBe('fenced')
      // And the old primary can come back.
      await monitor.stop()
      monitor = undefined
      expect((await mgr.rejoin('p0')).method).toBe('rewind')
    } finally {
      await monitor?.stop()
      await f.cleanup()
      state.cleanup()
    }
  }, 90_000)

  it('promotes a replica, the writer continues, and no two instances ever accept writes (async)', async () => {
    await scenario(false)
  }, 120_000)

  it('in sync mode promotes the synchronous standby and loses no acknowledged write', async () => {
    await scenario(true)
  }, 120_000)
})
