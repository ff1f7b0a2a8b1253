import type pg from 'pg'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { z } from 'zod'
import type { ProgressEvent, Role, RouteDef } from '../api/route.js'
import type { MagflockConfig } from '../config/schema.js'
import type { OsUser } from '../platform/os-user.js'
import type { StateLayout } from '../platform/paths.js'
import type { PgBinaries } from '../postgres/binaries.js'
import type { AuditWriter, EventPublisher } from './component.js'

/**
 * What the kernel hands to route handlers and components. Handlers in src/daemon/routes/*
 * do their work through these services (and the domain modules), never by reaching into the
 * daemon's internals.
 */
export interface InstanceHandle {
  name: string
  /** 'standalone': a restored copy, supervised but no member of the flock (docs/backup.md). */
  role: 'primary' | 'replica' | 'fenced' | 'standalone'
  port: number
  host: string
  dataDir: string
  /** Superuser connection settings (password resolved from the vault at call time). */
  connection(database?: string): Promise<pg.ClientConfig>
}

export interface InstanceRegistry {
  list(): InstanceHandle[]
  /** list() without standalone instances: the flock that replication and flock URLs see. */
  members(): Array<InstanceHandle & { role: 'primary' | 'replica' | 'fenced' }>
  get(name: string): InstanceHandle | undefined
  /** The current primary; throws E_NO_PRIMARY when there is none. */
  primary(): InstanceHandle
}

/** Secrets as the kernel sees them (vault or OS keychain behind it). */
export interface SecretStore {
  get(name: string): Promise<string | undefined>
  set(name: string, value: string): Promise<void>
  delete(name: string): Promise<boolean>
  list(): Promise<string[]>
}

/**
 * In-kernel exclusion between long operations on the same resource, e.g. `db:app` taken by
 * a migration or backup so `db drop app` refuses, or `topology` taken by a switchover so a
 * failover waits. `acquire` throws E_BUSY naming the holder; the returned function releases.
 */
export interface OperationLocks {
  acquire(resource: string, operation: string): () => void
  holder(resource: string): string | undefined
}

export interface KernelEvents extends EventPublisher {
  subscribe(fn: (ev: { type: string; at: string; payload: unknown }) => void): () => void
}

export interface KernelServices {
  layout: StateLayout
  /** The project the kernel runs for (its cwd at start): relative config paths resolve here. */
  projectDir: string
  env: string
  config(): MagflockConfig
  log: Logger
  events: KernelEvents
  metrics: Registry
  audit: AuditWriter
  bins: PgBinaries
  runAs: OsUser | undefined
  secrets: SecretStore
  instances: InstanceRegistry
  locks: OperationLocks
}

export interface RequestContext {
  actor: { tokenId: string; name: string; role: Role }
  /** Streams a progress event to the caller (NDJSON routes only; a no-op otherwise). */
  progress(ev: Omit<ProgressEvent, 'type'>): void
  /** Aborted when the caller disconnects or the kernel shuts down. */
  signal: AbortSignal
  /** Extra fields for this call's audit record (never secret values). */
  auditDetails: Record<string, unknown>
}

export type RouteHandler<R extends RouteDef> = (
  input: z.infer<R['input']>,
  ctx: RequestContext,
  k: KernelServices,
) => Promise<z.infer<R['output']>>

export interface BoundRoute {
  def: RouteDef
  handler: RouteHandler<RouteDef>
}

export function handle<R extends RouteDef>(def: R, handler: RouteHandler<R>): BoundRoute {
  return { def, handler: handler as unknown as RouteHandler<RouteDef> }
}
