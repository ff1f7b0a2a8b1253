import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { ComponentDef, ComponentHandle, ComponentHealth } from '../../../src/kernel/component.js'
import { EventBus } from '../../../src/kernel/event-bus.js'
import { ComponentManager } from '../../../src/kernel/lifecycle.js'
import { createKernelMetrics } from '../../../src/telemetry/metrics.js'

/** A manager on a fake clock: sleep() records the delay and moves time, never waits. */
function harness(opts: { sleep?: (ms: number) => Promise<void> } = {}) {
  let t = 1_000_000
  const sleeps: number[] = []
  const metrics = createKernelMetrics({ defaultMetrics: false })
  const events = new EventBus({ metrics })
  const log = pino({ level: 'silent' })
  const audit = { append: async () => undefined }
  const mgr = new ComponentManager({
    log,
    events,
    metrics,
    audit,
    now: () => t,
    sleep:
      opts.sleep ??
      (async (ms) => {
        sleeps.push(ms)
        t += ms
      }),
  })
  const calls: string[] = []
  const states = (name: string) =>
    events
      .recent()
      .filter((e) => e.type === 'component.state' && (e.payload as { component: string }).component === name)
      .map((e) => (e.payload as { to: string }).to)
  const failedEvents = () => events.recent().filter((e) => e.type === 'component.failed').map((e) => e.payload)
  return { mgr, metrics, events, sleeps, calls, states, failedEvents, advance: (ms: number) => (t += ms) }
}

type Ctl = { fail?: (err: Error) => void; signals: AbortSignal[]; starts: number; stops: number }

/** A component that records start/stop into `calls`; `startImpl` can make a start fail. */
function comp(
  calls: string[],
  name: string,
  dependsOn: string[] = [],
  extra: Partial<ComponentDef<unknown>> & {
    startImpl?: (n: number) => Promise<void> | void
    stopImpl?: () => Promise<void>
    health?: () => ComponentHealth | Promise<ComponentHealth>
  } = {},
): { def: ComponentDef<unknown>; ctl: Ctl } {
  const ctl: Ctl = { signals: [], starts: 0, stops: 0 }
  const def: ComponentDef<unknown> = {
    name,
    requires: dependsOn,
    restart: extra.restart ?? { policy: 'on-failure', initialBackoffMs: 100, maxBackoffMs: 1_000, maxRestarts: 3, windowMs: 60_000 },
    ...(extra.stopTimeoutMs !== undefined ? { stopTimeoutMs: extra.stopTimeoutMs } : {}),
    async start(ctx) {
      ctl.starts++
      ctl.fail = ctx.fail
      ctl.signals.push(ctx.signal)
      calls.push(`start ${name}`)
      await extra.startImpl?.(ctl.starts)
      const handle: ComponentHandle = {
        async stop() {
          ctl.stops++
          calls.push(`stop ${name}`)
          await extra.stopImpl?.()
        },
        health: extra.health ?? (() => ({ live: true, ready: true, detail: `${name} ok` })),
      }
      return handle
    },
  }
  return { def, ctl }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

describe('ComponentManager', () => {
  it('starts components in dependency order and stops them in reverse', async () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'metrics', ['postgres']).def, {})
    h.mgr.register(comp(h.calls, 'postgres').def, {})
    h.mgr.register(comp(h.calls, 'api', ['metrics', 'postgres']).def, {})
    await h.mgr.startAll()
    expect(h.calls).toEqual(['start postgres', 'start metrics', 'start api'])
    expect((await h.mgr.status()).map((s) => [s.name, s.state, s.healthy])).toEqual([
      ['postgres', 'running', true],
      ['metrics', 'running', true],
      ['api', 'running', true],
    ])
    await h.mgr.stopAll()
    expect(h.calls.slice(3)).toEqual(['stop api', 'stop metrics', 'stop postgres'])
    expect(h.states('postgres')).toEqual(['starting', 'running', 'stopping', 'stopped'])
  })

  it('refuses to boot a dependency cycle with E_COMPONENT_CYCLE, starting nothing', async () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'a', ['b']).def, {})
    h.mgr.register(comp(h.calls, 'b', ['a']).def, {})
    await expect(h.mgr.startAll()).rejects.toMatchObject({ code: 'E_COMPONENT_CYCLE' })
    expect(h.calls).toEqual([])
  })

  it('refuses a duplicate registration with E_COMPONENT_DUPLICATE', () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'a').def, {})
    expect(() => h.mgr.register(comp(h.calls, 'a').def, {})).toThrow(expect.objectContaining({ code: 'E_COMPONENT_DUPLICATE' }))
  })

  it('retries a failing start with exponential backoff, then runs', async () => {
    const h = harness()
    const c = comp(h.calls, 'flaky', [], {
      startImpl: (n) => {
        if (n <= 2) throw new Error(`not yet (${n})`)
      },
    })
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    expect(c.ctl.starts).toBe(3)
    expect(h.sleeps).toEqual([100, 200])
    const [s] = await h.mgr.status()
    expect(s).toMatchObject({ name: 'flaky', state: 'running', restarts: 2, healthy: true, lastError: 'not yet (2)' })
    expect(h.states('flaky')).toEqual(['starting', 'restarting', 'starting', 'restarting', 'starting', 'running'])
    const text = await h.metrics.registry.metrics()
    expect(text).toContain('magflock_component_restarts_total{component="flaky"} 2')
    expect(text).toContain('magflock_component_state{component="flaky",state="running"} 1')
    await h.mgr.stopAll()
  })

  it('gives up after maxRestarts: failed, event, earlier components stopped in reverse, E_COMPONENT_START_FAILED', async () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'a').def, {})
    h.mgr.register(comp(h.calls, 'b', ['a']).def, {})
    const bad = comp(h.calls, 'c', ['b'], {
      startImpl: () => {
        throw new Error('port 5432 taken')
      },
    })
    h.mgr.register(bad.def, {})
    h.mgr.register(comp(h.calls, 'd', ['c']).def, {})
    const err = await h.mgr.startAll().then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    )
    expect(err?.code).toBe('E_COMPONENT_START_FAILED')
    expect(err?.message).toContain('"c"')
    expect(err?.message).toContain('port 5432 taken')
    expect(bad.ctl.starts).toBe(4) // first try + maxRestarts (3)
    expect(h.sleeps).toEqual([100, 200, 400])
    expect(h.calls.filter((c) => c.startsWith('stop'))).toEqual(['stop b', 'stop a'])
    expect(h.calls).not.toContain('start d')
    expect(h.mgr.state('c')).toBe('failed')
    expect(h.mgr.state('d')).toBe('pending')
    expect(h.failedEvents()).toEqual([{ component: 'c', reason: expect.stringContaining('port 5432 taken') }])
    const text = await h.metrics.registry.metrics()
    expect(text).toContain('magflock_component_state{component="c",state="failed"} 1')
  })

  it('does not retry a start under restart policy never', async () => {
    const h = harness()
    h.mgr.register(
      comp(h.calls, 'once', [], {
        restart: { policy: 'never' },
        startImpl: () => {
          throw new Error('nope')
        },
      }).def,
      {},
    )
    await expect(h.mgr.startAll()).rejects.toMatchObject({ code: 'E_COMPONENT_START_FAILED' })
    expect(h.sleeps).toEqual([])
    expect(h.mgr.state('once')).toBe('failed')
  })

  it('restarts a component that fails at runtime: stops the old handle, aborts its signal, starts again', async () => {
    const h = harness()
    const c = comp(h.calls, 'worker')
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    c.ctl.fail?.(new Error('child exited'))
    await flush()
    expect(h.calls).toEqual(['start worker', 'stop worker', 'start worker'])
    expect(c.ctl.signals[0]?.aborted).toBe(true)
    expect(c.ctl.signals[1]?.aborted).toBe(false)
    expect(h.sleeps).toEqual([100])
    expect(h.states('worker')).toEqual(['starting', 'running', 'restarting', 'starting', 'running'])
    const [s] = await h.mgr.status()
    expect(s).toMatchObject({ state: 'running', restarts: 1, lastError: 'child exited' })
    await h.mgr.stopAll()
  })

  it('ignores a late fail() from an instance that was already replaced', async () => {
    const h = harness()
    const c = comp(h.calls, 'worker')
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    const oldFail = c.ctl.fail
    oldFail?.(new Error('first'))
    await flush()
    oldFail?.(new Error('stale'))
    await flush()
    expect(c.ctl.starts).toBe(2)
    await h.mgr.stopAll()
  })

  it('marks a component failed when runtime failures exceed the window, others keep running', async () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'base').def, {})
    const c = comp(h.calls, 'worker', ['base'])
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    for (let i = 0; i < 4; i++) {
      c.ctl.fail?.(new Error(`crash ${i}`))
      await flush()
    }
    expect(c.ctl.starts).toBe(4)
    expect(h.mgr.state('worker')).toBe('failed')
    expect(h.mgr.state('base')).toBe('running')
    expect(h.failedEvents()).toEqual([{ component: 'worker', reason: expect.stringContaining('crash 3') }])
    const st = await h.mgr.status()
    expect(st.find((s) => s.name === 'worker')).toMatchObject({ state: 'failed', healthy: false, restarts: 3 })
    await h.mgr.stopAll()
    expect(h.mgr.state('worker')).toBe('failed')
    expect(h.mgr.state('base')).toBe('stopped')
  })

  it('forgets failures that left the restart window', async () => {
    const h = harness()
    const c = comp(h.calls, 'worker')
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    for (let i = 0; i < 6; i++) {
      c.ctl.fail?.(new Error(`crash ${i}`))
      await flush()
      h.advance(61_000)
    }
    expect(h.mgr.state('worker')).toBe('running')
    expect(h.sleeps).toEqual([100, 100, 100, 100, 100, 100])
    await h.mgr.stopAll()
  })

  it('handles a fail() reported while start() is still running', async () => {
    const h = harness()
    let failNow: ((e: Error) => void) | undefined
    const c = comp(h.calls, 'early', [], {
      startImpl: (n) => {
        if (n === 1) failNow?.(new Error('died during start'))
      },
    })
    const start = c.def.start.bind(c.def)
    c.def.start = async (ctx) => {
      failNow = ctx.fail
      return start(ctx)
    }
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    await flush()
    expect(c.ctl.starts).toBe(2)
    expect(h.mgr.state('early')).toBe('running')
    await h.mgr.stopAll()
  })

  it('stopAll cancels a pending restart', async () => {
    let release: (() => void) | undefined
    const h = harness({ sleep: () => new Promise<void>((r) => (release = r)) })
    const c = comp(h.calls, 'worker')
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    c.ctl.fail?.(new Error('crash'))
    await flush()
    expect(h.mgr.state('worker')).toBe('restarting')
    await h.mgr.stopAll()
    release?.()
    await flush()
    expect(c.ctl.starts).toBe(1)
    expect(h.mgr.state('worker')).toBe('stopped')
  })

  it('bounds each stop by stopTimeoutMs and keeps going; never throws', async () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'base').def, {})
    h.mgr.register(comp(h.calls, 'hangs', ['base'], { stopTimeoutMs: 20, stopImpl: () => new Promise<void>(() => undefined) }).def, {})
    h.mgr.register(
      comp(h.calls, 'throws', ['hangs'], {
        stopImpl: async () => {
          throw new Error('stop exploded')
        },
      }).def,
      {},
    )
    await h.mgr.startAll()
    await expect(h.mgr.stopAll()).resolves.toBeUndefined()
    expect(h.calls.filter((c) => c.startsWith('stop'))).toEqual(['stop throws', 'stop hangs', 'stop base'])
    const st = await h.mgr.status()
    expect(st.map((s) => s.state)).toEqual(['stopped', 'stopped', 'stopped'])
    expect(st.find((s) => s.name === 'hangs')?.lastError).toContain('did not finish within 20 ms')
    expect(st.find((s) => s.name === 'throws')?.lastError).toContain('stop exploded')
  })

  it('reports health from the handle: async, unhealthy and throwing checks', async () => {
    const h = harness()
    h.mgr.register(comp(h.calls, 'a', [], { health: async () => ({ live: true, ready: false, detail: 'catching up' }) }).def, {})
    h.mgr.register(
      comp(h.calls, 'b', [], {
        health: () => {
          throw new Error('probe broke')
        },
      }).def,
      {},
    )
    await h.mgr.startAll()
    const st = await h.mgr.status()
    expect(st).toEqual([
      { name: 'a', state: 'running', restarts: 0, healthy: false, detail: 'catching up' },
      { name: 'b', state: 'running', restarts: 0, healthy: false, detail: 'health check failed: probe broke' },
    ])
    await h.mgr.stopAll()
  })

  it('passes services, a component logger and the metrics registry to start()', async () => {
    const h = harness()
    let seen: unknown
    h.mgr.register<{ port: number }>(
      {
        name: 'svc',
        requires: [],
        restart: { policy: 'never' },
        async start(ctx) {
          seen = { services: ctx.services, name: ctx.name, hasRegistry: ctx.metrics === h.metrics.registry }
          return { stop: async () => undefined, health: () => ({ live: true, ready: true }) }
        },
      },
      { port: 5432 },
    )
    await h.mgr.startAll()
    expect(seen).toEqual({ services: { port: 5432 }, name: 'svc', hasRegistry: true })
    await h.mgr.stopAll()
  })

  it('shares one shutdown between concurrent stopAll() calls', async () => {
    const h = harness()
    let release: (() => void) | undefined
    const c = comp(h.calls, 'slow', [], { stopImpl: () => new Promise<void>((r) => (release = r)) })
    h.mgr.register(c.def, {})
    await h.mgr.startAll()
    const first = h.mgr.stopAll()
    let secondDone = false
    const second = h.mgr.stopAll().then(() => (secondDone = true))
    await flush()
    expect(secondDone).toBe(false)
    release?.()
    await Promise.all([first, second])
    expect(c.ctl.stops).toBe(1)
    expect(h.mgr.state('slow')).toBe('stopped')
  })

  it('scrubs secret-shaped text from the start error it reports', async () => {
    const h = harness()
    h.mgr.register(
      comp(h.calls, 'db', [], {
        restart: { policy: 'never' },
        startImpl: () => {
          throw new Error('cannot reach postgres://app:hunter2@127.0.0.1:5432/app')
        },
      }).def,
      {},
    )
    const err = await h.mgr.startAll().catch((e: unknown) => e as Error)
    expect(err?.message).toContain('cannot reach')
    expect(err?.message).not.toContain('hunter2')
    expect(JSON.stringify(h.failedEvents())).not.toContain('hunter2')
  })
})

