import type pg from 'pg'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { z } from 'zod'
import type { ProgressEvent, Role, RouteDef } from '../api/route.js'
import type { HookPoint } from '../api/events.js'
import type { EventJournal } from './event-journal.js'
import type { MagflockConfig } from '../config/schema.js'
import type { OsUser } from '../platform/os-user.js'
import type { StateLayout } from '../platform/paths.js'
import type { PgBinaries } from '../platform/pg-tools.js'
import type { SecretStore } from '../secrets/secret-store.js'
import type { AuditWriter, EventPublisher } from './component.js'
import type { Principal } from './grants.js'

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

export type { SecretStore } from '../secrets/secret-store.js'

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

/** What a hook is told about the operation: names, ids, numbers; never a secret value. */
export type HookContext = Record<string, string | number | boolean | null | string[]>

/** Extension hooks at the defined points (src/hooks/registry.ts, docs/extensions.md). */
export interface HookRunner {
  /** Runs the point's hooks; throws E_HOOK_VETOED when a veto hook vetoes. Timeouts are skipped. */
  run(point: HookPoint, context: HookContext): Promise<void>
  /** Tells the point's observers; returns at once and never throws. */
  notify(point: HookPoint, context: HookContext): void
  /** Forgets every hook of an extension (disabled or removed). */
  dropExtension(extension: string): void
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
  /** Every accepted event, numbered and kept on disk (GET /v1/events). */
  journal: EventJournal
  hooks: HookRunner
}

export interface RequestContext {
  actor: { tokenId: string; name: string; role: Role | 'extension' }
  /** The caller's role and grants (src/kernel/grants.ts). */
  principal: Principal
  /** Raw NDJSON routes only (RouteDef.raw): the response, one JSON value per line. */
  stream?: RawStream
  /** Streams a progress event to the caller (NDJSON routes only; a no-op otherwise). */
  progress(ev: Omit<ProgressEvent, 'type'>): void
  /** Aborted when the caller disconnects or the kernel shuts down. */
  signal: AbortSignal
  /** Extra fields for this call's audit record (never secret values). */
  auditDetails: Record<string, unknown>
}

export interface RawStream {
  /** Sends the response head now (200, NDJSON); the first write does it otherwise. */
  open(): void
  /** Writes one line; false when the socket's buffer is full (then wait for drain()). */
  write(line: unknown): boolean
  /** Resolves once the buffer has drained or the connection has closed. */
  drain(): Promise<void>
  /** Bytes written but not yet flushed to the socket. */
  bufferedBytes(): number
  /** Cuts the connection. */
  destroy(): void
}

/**
 * A route handler over the services `S` the composition root hands it (KernelServices, or a
 * richer bag such as the daemon's RouteServices): typed, so no handler casts to reach more.
 */
export type RouteHandler<R extends RouteDef, S = KernelServices> = (
  input: z.infer<R['input']>,
  ctx: RequestContext,
  k: S,
) => Promise<z.infer<R['output']>>

export interface BoundRoute<S = KernelServices> {
  def: RouteDef
  handler: RouteHandler<RouteDef, S>
}

export function handle<R extends RouteDef, S = KernelServices>(def: R, handler: RouteHandler<R, S>): BoundRoute<S> {
  return { def, handler: handler as unknown as RouteHandler<RouteDef, S> }
}
