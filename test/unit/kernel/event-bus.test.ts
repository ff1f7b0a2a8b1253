import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { EventBus } from '../../../src/kernel/event-bus.js'
import { eventTypes, registerEventType } from '../../../src/kernel/events.js'
import { createKernelMetrics } from '../../../src/telemetry/metrics.js'

async function eventsCounter(metrics: ReturnType<typeof createKernelMetrics>): Promise<Array<{ labels: Record<string, unknown>; value: number }>> {
  const m = await metrics.registry.getSingleMetric('magflock_events_total')?.get()
  return (m?.values ?? []).map((v) => ({ labels: v.labels as Record<string, unknown>, value: v.value }))
}

describe('EventBus', () => {
  it('delivers a valid built-in event to subscribers synchronously and counts it', async () => {
    const metrics = createKernelMetrics({ defaultMetrics: false })
    const bus = new EventBus({ metrics, now: () => new Date('2026-01-01T00:00:00Z') })
    const seen: unknown[] = []
    bus.subscribe((ev) => seen.push(ev))
    expect(bus.publish('kernel.started', { pid: 42, version: '0.1.0', env: 'dev' })).toBe(true)
    expect(seen).toEqual([{ type: 'kernel.started', at: '2026-01-01T00:00:00.000Z', payload: { pid: 42, version: '0.1.0', env: 'dev' } }])
    expect(await eventsCounter(metrics)).toEqual([{ labels: { type: 'kernel.started', valid: 'true' }, value: 1 }])
  })

  it('rejects an unknown type, returns false and counts it as invalid', async () => {
    const metrics = createKernelMetrics({ defaultMetrics: false })
    const bus = new EventBus({ metrics })
    const seen: unknown[] = []
    bus.subscribe((ev) => seen.push(ev))
    expect(bus.publish('no.such.event', {})).toBe(false)
    expect(seen).toEqual([])
    expect(bus.recent(10)).toEqual([])
    expect(await eventsCounter(metrics)).toEqual([{ labels: { type: 'no.such.event', valid: 'false' }, value: 1 }])
  })

  it('rejects a payload that fails its schema and counts it with the type label', async () => {
    const metrics = createKernelMetrics({ defaultMetrics: false })
    const bus = new EventBus({ metrics })
    expect(bus.publish('component.state', { component: 'x', from: 'running', to: 'exploded' })).toBe(false)
    expect(bus.publish('instance.started', { instance: 'primary' })).toBe(false)
    const counts = await eventsCounter(metrics)
    expect(counts).toContainEqual({ labels: { type: 'component.state', valid: 'false' }, value: 1 })
    expect(counts).toContainEqual({ labels: { type: 'instance.started', valid: 'false' }, value: 1 })
  })

  it('bounds the label of a garbage type name', async () => {
    const metrics = createKernelMetrics({ defaultMetrics: false })
    const bus = new EventBus({ metrics })
    expect(bus.publish('x'.repeat(500), {})).toBe(false)
    expect(await eventsCounter(metrics)).toEqual([{ labels: { type: 'invalid_type_name', valid: 'false' }, value: 1 }])
  })

  it('accepts a type registered by an area module', () => {
    const schema = z.object({ backupId: z.string() })
    registerEventType('test.backup.done', schema)
    registerEventType('test.backup.done', schema) // same schema again: no-op
    expect(eventTypes()).toContain('test.backup.done')
    const bus = new EventBus()
    expect(bus.publish('test.backup.done', { backupId: 'b1' })).toBe(true)
    expect(bus.publish('test.backup.done', { backupId: 1 })).toBe(false)
  })

  it('refuses to register a type twice with different schemas', () => {
    registerEventType('test.dup', z.object({}))
    expect(() => registerEventType('test.dup', z.object({ a: z.string() }))).toThrow(expect.objectContaining({ code: 'E_EVENT_TYPE_CONFLICT' }))
  })

  it('keeps the last N events in a ring buffer, oldest first', () => {
    const bus = new EventBus({ capacity: 3 })
    for (let i = 0; i < 5; i++) bus.publish('kernel.stopping', { reason: `r${i}` })
    expect(bus.recent(10).map((e) => (e.payload as { reason: string }).reason)).toEqual(['r2', 'r3', 'r4'])
    expect(bus.recent(2).map((e) => (e.payload as { reason: string }).reason)).toEqual(['r3', 'r4'])
    expect(bus.recent(0)).toEqual([])
  })

  it('stops delivering after unsubscribe, and a throwing subscriber does not stop the others', () => {
    const bus = new EventBus()
    const a: string[] = []
    const b: string[] = []
    bus.subscribe(() => {
      throw new Error('boom')
    })
    const unsubA = bus.subscribe((ev) => a.push(ev.type))
    bus.subscribe((ev) => b.push(ev.type))
    expect(bus.publish('kernel.stopping', { reason: 'one' })).toBe(true)
    unsubA()
    bus.publish('kernel.stopping', { reason: 'two' })
    expect(a).toEqual(['kernel.stopping'])
    expect(b).toEqual(['kernel.stopping', 'kernel.stopping'])
  })

  it('validates every built-in event type', () => {
    const bus = new EventBus()
    const samples: Record<string, unknown> = {
      'kernel.started': { pid: 1, version: '1', env: 'dev' },
      'kernel.stopping': { reason: 'signal SIGTERM' },
      'component.state': { component: 'postgres', from: 'starting', to: 'running' },
      'component.failed': { component: 'postgres', reason: 'gave up' },
      'instance.started': { instance: 'primary', pid: 10, adopted: true },
      'instance.crashed': { instance: 'primary', pid: 10, signal: 'SIGKILL' },
      'instance.restarted': { instance: 'primary', pid: 11, attempt: 1 },
      'instance.restart-failed': { instance: 'primary', attempt: 1, reason: 'E_INSTANCE_START_FAILED: postgres exited during startup' },
      'instance.failed': { instance: 'primary', reason: 'gave up' },
      'config.reloaded': { applied: ['kernel.logLevel'], restartRequired: [] },
      'api.denied': { route: 'token.create', reason: 'role viewer' },
    }
    for (const [type, payload] of Object.entries(samples)) expect(bus.publish(type, payload), type).toBe(true)
  })
})
