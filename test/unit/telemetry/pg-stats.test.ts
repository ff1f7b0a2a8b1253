import { describe, expect, it } from 'vitest'
import { createKernelMetrics } from '../../../src/telemetry/metrics.js'
import { registerPostgresCollector } from '../../../src/telemetry/pg-stats.js'

// Queries against a real Postgres are covered by test/integration/telemetry/promtool.test.ts;
// these cover registration and instances that are not running (query undefined).
describe('registerPostgresCollector', () => {
  it('reports an instance without a query function as down', async () => {
    const m = createKernelMetrics({ defaultMetrics: false })
    registerPostgresCollector(m.registry, async () => [{ instance: 'primary', role: 'primary', query: undefined }])
    const text = await m.registry.metrics()
    expect(text).toContain('magflock_postgres_up{instance="primary",role="primary"} 0')
  })

  it('can be registered again (component restart): the new source replaces the old one', async () => {
    const m = createKernelMetrics({ defaultMetrics: false })
    registerPostgresCollector(m.registry, async () => [{ instance: 'old', role: 'primary', query: undefined }])
    expect(() => registerPostgresCollector(m.registry, async () => [{ instance: 'new', role: 'primary', query: undefined }])).not.toThrow()
    const text = await m.registry.metrics()
    expect(text).toContain('magflock_postgres_up{instance="new",role="primary"} 0')
    expect(text).not.toContain('instance="old"')
  })

  it('drops series of instances that went away', async () => {
    const m = createKernelMetrics({ defaultMetrics: false })
    let targets = [
      { instance: 'primary', role: 'primary', query: undefined },
      { instance: 'r1', role: 'replica', query: undefined },
    ]
    registerPostgresCollector(m.registry, async () => targets)
    expect(await m.registry.metrics()).toContain('instance="r1"')
    targets = targets.slice(0, 1)
    expect(await m.registry.metrics()).not.toContain('instance="r1"')
  })

  it('returns a function that removes its metrics', async () => {
    const m = createKernelMetrics({ defaultMetrics: false })
    const unregister = registerPostgresCollector(m.registry, async () => [])
    expect(await m.registry.metrics()).toContain('magflock_postgres_up')
    unregister()
    const text = await m.registry.metrics()
    expect(text).not.toContain('magflock_postgres_')
    expect(text).toContain('magflock_kernel_uptime_seconds')
    registerPostgresCollector(m.registry, async () => [])
    expect(await m.registry.metrics()).toContain('magflock_postgres_up')
  })
})
