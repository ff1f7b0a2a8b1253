import type { RouteDef } from '../api/route.js'
import type { ComponentManager } from '../kernel/lifecycle.js'
import { handle as bindRoute, type BoundRoute, type KernelServices, type RouteHandler } from '../kernel/services.js'
import type { TokenStore } from '../kernel/tokens.js'
import type { PoolerRuntime } from '../pooler/runtime.js'
import type { RealtimeRuntime } from '../realtime/runtime.js'
import type { PrimaryHooks } from '../replication/hooks.js'
import type { FailoverMonitor } from '../replication/monitor.js'
import type { KernelMetrics } from '../telemetry/metrics.js'
import type { FlockInstances } from './instances.js'
import type { ClusterNodeRuntime } from '../cluster/node-boot.js'

/**
 * What the daemon hands to its components and route handlers: the kernel's services (the
 * interface domains see, src/kernel/services.ts) plus what only the composition root owns.
 * Typed here once, so nothing casts to reach the running kernel.
 */

/**
 * Handles of running components that routes read. One object per kernel (several kernels run
 * in one test process), filled by each component at start and cleared at stop: no module
 * globals. Undefined while the component is disabled, failed or stopped.
 */
export interface LiveComponents {
  failoverMonitor?: FailoverMonitor | undefined
  pooler?: PoolerRuntime | undefined
  realtime?: RealtimeRuntime | undefined
  /** This kernel as a node of a multi-host flock (cluster.json), else undefined. */
  clusterNode?: ClusterNodeRuntime | undefined
}

export interface DaemonServices extends KernelServices {
  /** The instance registry with its supervisors (KernelServices.instances is this object). */
  instances: FlockInstances
  /** The kernel's metric set (component states, API figures) over `metrics`. */
  kernelMetrics: KernelMetrics
  live: LiveComponents
  /** Awaited hooks around a change of primary, of this kernel (the pooler registers). */
  primaryHooks: PrimaryHooks
}

export interface RunningKernel {
  services: DaemonServices
  components: ComponentManager
  instances: FlockInstances
  tokens: TokenStore
  startedAt: Date
  /** Stop everything; with keepPostgres the instances keep serving for the next kernel. */
  shutdown(opts: { keepPostgres: boolean; reason: string }): Promise<void>
  /** Resolves when the kernel has fully stopped. */
  stopped: Promise<void>
  reload(): Promise<{ applied: string[]; restartRequired: string[]; env: string }>
}

/** Route handlers also reach the running kernel (status, reload, shutdown). */
export interface RouteServices extends DaemonServices {
  kernel: RunningKernel
}

function hasKernel(s: DaemonServices): s is RouteServices {
  return 'kernel' in s
}

/** The route services of a booted kernel (its services object once boot added `kernel`). */
export function routeServicesOf(s: DaemonServices): RouteServices {
  if (!hasKernel(s)) throw new Error('the kernel is still booting: no control API yet')
  return s
}

/** Binds a handler to its route contract over the daemon's RouteServices. */
export function handle<R extends RouteDef>(def: R, handler: RouteHandler<R, RouteServices>): BoundRoute<RouteServices> {
  return bindRoute<R, RouteServices>(def, handler)
}

export type DaemonRoute = BoundRoute<RouteServices>
