import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { RestartPolicy } from './restart-policy.js'

/**
 * The contract every kernel component fulfils (containerd-style): it declares what it
 * requires; the kernel boots the graph in dependency order, stops it in reverse, and restarts
 * a component that fails by its policy.
 *
 * `start(ctx)` resolves once the component is serving and returns a handle. A component that
 * later dies on its own calls `ctx.fail(err)`; the kernel then stops the handle and applies
 * the restart policy. `stop()` must be idempotent and must finish within `stopTimeoutMs`.
 */
export interface ComponentHandle {
  stop(): Promise<void>
  /** Liveness/readiness; `detail` is one sentence an operator reads in `magflock status`. */
  health(): ComponentHealth | Promise<ComponentHealth>
}

/** The handle of a component that has nothing to run (disabled by config): healthy, says why. */
export function idleHandle(detail: string): ComponentHandle {
  return { stop: async () => undefined, health: () => ({ live: true, ready: true, detail }) }
}

export interface ComponentHealth {
  live: boolean
  ready: boolean
  detail?: string
}

export interface ComponentDef<S = unknown> {
  name: string
  dependsOn: string[]
  restart: RestartPolicy
  stopTimeoutMs?: number
  start(ctx: ComponentContext<S>): Promise<ComponentHandle>
}

export interface ComponentContext<S = unknown> {
  name: string
  /** The slice of kernel state/config this component needs. */
  services: S
  log: Logger
  events: EventPublisher
  metrics: Registry
  audit: AuditWriter
  /** Report that the running component died; triggers the restart policy. */
  fail(err: Error): void
  /** Aborted when the kernel stops the component. */
  signal: AbortSignal
}

export interface EventPublisher {
  /** Rejects (and counts) an unknown type or a payload that fails its schema. */
  publish(type: string, payload: unknown): boolean
}

export interface AuditRecordInput {
  actor: string
  role?: string | undefined
  action: string
  target?: string | undefined
  /** `intent` is written before a mutating call acts; its outcome record follows. */
  result: 'intent' | 'ok' | 'error' | 'denied'
  details?: Record<string, unknown> | undefined
}

export interface AuditWriter {
  /** Resolves once the record is durable (with its seq, when the writer numbers records); rejects when it cannot be. */
  append(rec: AuditRecordInput): Promise<number | void>
}

export type ComponentState = 'pending' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed'

export function defineComponent<S>(def: ComponentDef<S>): ComponentDef<S> {
  return def
}
