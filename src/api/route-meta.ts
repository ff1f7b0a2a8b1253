/**
 * What a control-API route is without its schemas: method, path, roles, whether it mutates.
 * No zod here: a command that only calls a route (e.g. `status`) imports a route's metadata
 * from a `*-meta.ts` module and its response type with `import type`, so its process never
 * loads zod or the schemas (the kernel has checked the response against the contract before
 * sending it). The contract in src/api/<area>.ts spreads the same metadata object, so each
 * route is still declared once.
 */
export const ROLES = ['admin', 'operator', 'viewer', 'ci'] as const
export type Role = (typeof ROLES)[number]

export const ALL_ROLES: readonly Role[] = ROLES
export const OPERATORS: readonly Role[] = ['admin', 'operator']
export const ADMIN_ONLY: readonly Role[] = ['admin']

export const API_HOST = 'magflock'
export const API_VERSION = 'v1'

export interface RouteMeta {
  id: string
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  roles: readonly Role[]
  /** Mutating calls are appended to the audit log, successful or not. */
  mutating: boolean
  streaming?: boolean
  /**
   * A long-lived NDJSON stream the handler writes itself through `ctx.stream` (no progress/
   * result protocol), e.g. GET /v1/events.
   */
  raw?: boolean
  /** Extension tokens reach this route and the handler checks their grants (events, hooks). */
  extensions?: boolean
}

/**
 * A route's metadata plus a loader for its full contract (`R`, a RouteDef), for the client:
 * it calls the route without loading schemas, and loads them only when it must check a
 * response itself (a remote kernel, which may run another version). `R` is a type only.
 */
export interface LazyRoute<R> extends RouteMeta {
  contract: () => Promise<R>
}
