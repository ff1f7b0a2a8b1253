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

/**
 * One component declaration. `S` is the services bag the composition root hands every
 * component (src/daemon/services.ts); `N` the names of the components it may require, so a
 * misspelt or unknown dependency is a compile error (and the graph refuses it at boot too).
 */
export interface ComponentDef<S = unknown, N extends string = string> {
  name: N
  /** Components that must be running before this one starts (and stop after it). */
  requires: readonly N[]
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

export function defineComponent<S, N extends string = string>(def: ComponentDef<S, N>): ComponentDef<S, N> {
  return def
}
