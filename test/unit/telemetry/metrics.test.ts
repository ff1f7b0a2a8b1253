import { describe, expect, it } from 'vitest'
import { createKernelMetrics } from '../../../src/telemetry/metrics.js'

describe('createKernelMetrics', () => {
  it('reports uptime from the injected clock at scrape time', async () => {
    let t = 1_000_000
    const m = createKernelMetrics({ now: () => t, defaultMetrics: false })
    t += 12_500
    const text = await m.registry.metrics()
    expect(text).toMatch(/^magflock_kernel_uptime_seconds 12\.5$/m)
  })

  it('sets 1 for the current component state and 0 for the others', async () => {
    const m = createKernelMetrics({ defaultMetrics: false })
    m.componentState('postgres', 'starting')
    m.componentState('postgres', 'running')
    const text = await m.registry.metrics()
    expect(text).toContain('magflock_component_state{component="postgres",state="running"} 1')
    expect(text).toContain('magflock_component_state{component="postgres",state="starting"} 0')
  })

  it('counts restarts, events, API requests with duration, and instance restarts', async () => {
    const m = createKernelMetrics({ defaultMetrics: false })
    m.componentRestarted('metrics')
    m.componentRestarted('metrics')
    m.eventCounted('kernel.started', true)
    m.eventCounted('bogus', false)
    m.apiRequest('status', 'GET', 200, 0.0004)
    m.instanceRestarted('primary')
    const text = await m.registry.metrics()
    expect(text).toContain('magflock_component_restarts_total{component="metrics"} 2')
    expect(text).toContain('magflock_events_total{type="bogus",valid="false"} 1')
    expect(text).toContain('magflock_api_requests_total{route="status",method="GET",status="200"} 1')
    expect(text).toContain('magflock_api_request_duration_seconds_bucket{le="0.0005",route="status",method="GET"} 1')
    expect(text).toContain('magflock_instance_restarts_total{instance="primary"} 1')
  })

  it('includes the default process metrics under the magflock_ prefix', async () => {
    const m = createKernelMetrics()
    const text = await m.registry.metrics()
    expect(text).toContain('magflock_process_cpu_seconds_total')
    expect(text).toContain('magflock_nodejs_heap_size_used_bytes')
    expect(text).toContain('magflock_nodejs_active_handles ')
    // prom-client's gauges named *_total fail promtool's lint; they are dropped.
    expect(text).not.toMatch(/^# TYPE magflock_\w+_total gauge$/m)
  })
})
