import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initInstance, pgIsReady, stopInstance, type InstanceSpec } from '../../../src/postgres/instance.js'
import { isProcessAlive, processesInDataDir } from '../../../src/postgres/pidfile.js'
import { InstanceSupervisor, type SupervisorOptions } from '../../../src/postgres/supervisor.js'
import { recordingEvents, silentLog, until } from './events.js'
import { killLeftovers, query, testSpec } from './spec.js'

const PASSWORD = 'sup-pw'

describe('InstanceSupervisor', () => {
  let spec: InstanceSpec
  let cleanup: () => void
  const sups: InstanceSupervisor[] = []

  const make = (opts: Partial<SupervisorOptions> = {}) => {
    const events = recordingEvents()
    const sup = new InstanceSupervisor(spec, {
      log: silentLog,
      events,
      restart: { policy: 'always', initialBackoffMs: 20, maxRestarts: 3, windowMs: 60_000 },
      ...opts,
    })
    sups.push(sup)
    return { sup, events }
  }

  beforeAll(async () => {
    const t = await testSpec()
    spec = t.spec
    cleanup = t.cleanup
    await initInstance(spec, PASSWORD)
  })

  afterAll(async () => {
    for (const s of sups) await s.stop({ keepRunning: true }).catch(() => undefined)
    await stopInstance(spec, 'immediate').catch(() => undefined)
    await killLeftovers(spec.dataDir)
    cleanup()
  })

  it('stop({keepRunning: true}) leaves the postmaster serving and a new supervisor adopts the same pid', async () => {
    const a = make()
    await a.sup.start()
    const pid = a.sup.status().pid!
    expect(a.sup.status()).toMatchObject({ state: 'running', adopted: false, port: spec.port, name: spec.name })
    await a.sup.stop({ keepRunning: true })
    expect(a.sup.status()).toMatchObject({ state: 'stopped', pid: null })
    expect(await isProcessAlive(pid)).toBe(true)
    expect(await pgIsReady(spec)).toBe('running')

    const b = make()
    await b.sup.start()
    expect(b.sup.status()).toMatchObject({ state: 'running', pid, adopted: true })
    expect(b.sup.health()).toMatchObject({ live: true, ready: true })
    expect(b.sup.lastDecision()).toMatch(/adopted/)

    // The adopted postmaster dies: the adopting supervisor (not the stopped one) restarts it.
    process.kill(pid, 'SIGKILL')
    await until(() => b.events.list.some((e) => e.type === 'instance.restarted'), 'restart by the adopting supervisor')
    expect(b.events.list[0]).toMatchObject({ type: 'instance.crashed', payload: { pid } })
    expect(a.events.list).toEqual([])
    expect((await query<{ x: number }>(spec, PASSWORD, 'select 1 as x')).rows[0]?.x).toBe(1)
    await b.sup.stop({ keepRunning: false })
  })

  it('stop({keepRunning: false}) shuts Postgres down and publishes no crash', async () => {
    const { sup, events } = make()
    await sup.start()
    const pid = sup.status().pid!
    await sup.stop({ keepRunning: false })
    await sup.stop({ keepRunning: false }) // idempotent
    expect(await isProcessAlive(pid)).toBe(false)
    expect(await processesInDataDir(spec.dataDir)).toEqual([])
    expect(sup.status().state).toBe('stopped')
    expect(sup.health()).toMatchObject({ live: false, ready: false })
    expect(events.list).toEqual([])
  })

  it('a stopped supervisor never restarts Postgres, even when stopped during the backoff', async () => {
    const { sup, events } = make({ restart: { policy: 'always', initialBackoffMs: 30_000, maxRestarts: 3, windowMs: 60_000 } })
    await sup.start()
    const pid = sup.status().pid!
    process.kill(pid, 'SIGKILL')
    await until(() => sup.status().state === 'restarting', 'the restart backoff')
    await sup.stop({ keepRunning: false })
    expect(sup.status().state).toBe('stopped')
    expect(events.list.map((e) => e.type)).toEqual(['instance.crashed'])
    // The dead postmaster's children exit on their own; a restarted one would stay.
    await until(async () => (await processesInDataDir(spec.dataDir)).length === 0, 'the orphaned backends to exit', 15_000)
    expect(await pgIsReady(spec)).toBe('no_response')
    expect(sup.status()).toMatchObject({ state: 'stopped', pid: null, restarts: 0 })
  })

  it('pauseSupervision lets someone else stop the instance without a crash; resumeSupervision starts it again', async () => {
    const { sup, events } = make()
    await sup.start()
    const first = sup.status().pid!
    await sup.pauseSupervision()
    await stopInstance(spec, 'fast')
    await until(() => sup.status().state === 'stopped', 'the supervisor to notice the planned stop')
    await sup.resumeSupervision()
    const second = sup.status()
    expect(second.state).toBe('running')
    expect(second.pid).not.toBe(first)
    expect(await pgIsReady(spec)).toBe('running')
    expect(events.list).toEqual([])
    await sup.stop({ keepRunning: false })
  })

  it('with policy on-failure, a clean external shutdown is not a crash and is not restarted', async () => {
    const { sup, events } = make({ restart: { policy: 'on-failure', initialBackoffMs: 20, maxRestarts: 3, windowMs: 60_000 } })
    await sup.start()
    await stopInstance(spec, 'fast')
    await until(() => sup.status().state !== 'running', 'the supervisor to notice the exit')
    expect(sup.status().state).toBe('stopped')
    expect(sup.lastDecision()).toMatch(/not restarting: exited cleanly/)
    expect(events.list).toEqual([])
    expect(await processesInDataDir(spec.dataDir)).toEqual([])
    await sup.stop({ keepRunning: false })
  })

  it('gives up with instance.failed when the data dir is no longer startable', async () => {
    let failedReason: string | undefined
    const { sup, events } = make({ onFailed: (r) => (failedReason = r) })
    await sup.start()
    const pid = sup.status().pid!
    const moved = `${spec.dataDir}.moved`
    await fsp.rename(spec.dataDir, moved)
    try {
      process.kill(pid, 'SIGKILL')
      await until(() => sup.status().state === 'failed', 'the supervisor to give up')
      // Every failed attempt is reported (the failover monitor acts on the first one).
      expect(events.list.map((e) => e.type)).toEqual(['instance.crashed', 'instance.restart-failed', 'instance.restart-failed', 'instance.restart-failed', 'instance.failed'])
      expect(events.list[1]?.payload).toMatchObject({ instance: spec.name, attempt: 1 })
      expect(events.list[4]?.payload).toMatchObject({ instance: spec.name })
      expect(String(events.list[4]?.payload.reason)).toMatch(/3 times/)
      expect(failedReason).toMatch(/gave up/)
      expect(sup.status()).toMatchObject({ state: 'failed', pid: null, restarts: 0 })
      expect(sup.health()).toMatchObject({ live: false, ready: false })
      expect(sup.lastDecision()).toMatch(/gave up restarting/)
    } finally {
      await sup.stop({ keepRunning: false })
      await killLeftovers(moved)
      await until(async () => (await processesInDataDir(moved)).length === 0, 'orphans to exit')
      await fsp.rm(`${moved}/postmaster.pid`, { force: true })
      await fsp.rename(moved, spec.dataDir)
    }
  })
})
