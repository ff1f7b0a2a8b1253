import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration } from 'prom-client'
import type { ComponentState } from '../kernel/component.js'

/**
 * The kernel's Prometheus registry and the handful of typed recorders the kernel core calls.
 * One registry per kernel (never prom-client's global one), so tests can create as many
 * kernels as they like and `registry.metrics()` is exactly what `/metrics` serves.
 */
export interface KernelMetrics {
  registry: Registry
  componentState(name: string, state: ComponentState): void
  componentRestarted(name: string): void
  eventCounted(type: string, valid: boolean): void
  apiRequest(route: string, method: string, status: number, seconds: number): void
  instanceRestarted(instance: string): void
}

export const COMPONENT_STATES: readonly ComponentState[] = [
  'pending',
  'starting',
  'running',
  'restarting',
  'stopping',
  'stopped',
  'failed',
]

/** Control-API calls are mostly sub-millisecond on a Unix socket; a few (status with health) take longer. */
export const API_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export function createKernelMetrics(opts: { startedAt?: number; now?: () => number; defaultMetrics?: boolean } = {}): KernelMetrics {
  const now = opts.now ?? Date.now
  const startedAt = opts.startedAt ?? now()
  const registry = new Registry()

  new Gauge({
    name: 'magflock_kernel_uptime_seconds',
    help: 'Seconds since the kernel started.',
    registers: [registry],
    collect() {
      this.set(Math.max(0, (now() - startedAt) / 1000))
    },
  })
  const componentState = new Gauge({
    name: 'magflock_component_state',
    help: 'Kernel component state: 1 for the current state of each component, 0 for the others.',
    labelNames: ['component', 'state'] as const,
    registers: [registry],
  })
  const componentRestarts = new Counter({
    name: 'magflock_component_restarts_total',
    help: 'Restarts of kernel components by their restart policy.',
    labelNames: ['component'] as const,
    registers: [registry],
  })
  const events = new Counter({
    name: 'magflock_events_total',
    help: 'Events published on the kernel event bus; valid="false" counts rejected ones (unknown type or invalid payload).',
    labelNames: ['type', 'valid'] as const,
    registers: [registry],
  })
  const apiRequests = new Counter({
    name: 'magflock_api_requests_total',
    help: 'Control-API requests by route, method and HTTP status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  })
  const apiDuration = new Histogram({
    name: 'magflock_api_request_duration_seconds',
    help: 'Control-API request duration in seconds.',
    labelNames: ['route', 'method'] as const,
    buckets: API_DURATION_BUCKETS,
    registers: [registry],
  })
  const instanceRestarts = new Counter({
    name: 'magflock_instance_restarts_total',
    help: 'Restarts of Postgres instances by their supervisor.',
    labelNames: ['instance'] as const,
    registers: [registry],
  })
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: 'magflock_' })
    // prom-client exposes these sums as gauges named *_total, which Prometheus' linter
    // (`promtool check metrics`) rejects; the per-type gauges without the suffix carry the
    // same information (sum them).
    for (const n of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(`magflock_${n}`)
  }

  return {
    registry,
    componentState(name, state) {
      for (const s of COMPONENT_STATES) componentState.set({ component: name, state: s }, s === state ? 1 : 0)
    },
    componentRestarted(name) {
      componentRestarts.inc({ component: name })
    },
    eventCounted(type, valid) {
      events.inc({ type, valid: valid ? 'true' : 'false' })
    },
    apiRequest(route, method, status, seconds) {
      apiRequests.inc({ route, method, status: String(status) })
      apiDuration.observe({ route, method }, seconds)
    },
    instanceRestarted(instance) {
      instanceRestarts.inc({ instance })
    },
  }
}

/**
 * A domain metric registered at most once per registry: a component that the kernel restarts
 * gets the same metric back instead of prom-client's duplicate-registration error.
 */
export function gaugeOn(reg: Registry, cfg: Omit<GaugeConfiguration<string>, 'registers'>): Gauge {
  return (reg.getSingleMetric(cfg.name) as Gauge | undefined) ?? new Gauge({ ...cfg, registers: [reg] })
}

export function counterOn(reg: Registry, cfg: Omit<CounterConfiguration<string>, 'registers'>): Counter {
  return (reg.getSingleMetric(cfg.name) as Counter | undefined) ?? new Counter({ ...cfg, registers: [reg] })
}
