import type { Role, RouteDef } from '../api/route.js'
import { FORBIDDEN } from './errors.api.js'

/**
 * Who is calling, and what it was granted. Every request the control API accepts carries a
 * principal: an operator token (role admin/operator/viewer/ci, no grants: the route's role
 * list decides) or an extension token (role `extension`, allowed nothing by role alone, only
 * what its `grants` name).
 *
 * Capability strings (docs/extensions.md):
 *   events:subscribe:<pattern>         pattern = an event type, or a prefix ending in `*`
 *   api:call:<routeId>                 a route id of src/api/*.ts (never the sensitive ones)
 *   db:connect:<database>:ro|rw
 *   config:read
 *   state:dir
 *   hooks:<point>:observe|veto
 */
export type PrincipalRole = Role | 'extension'

export interface Principal {
  role: PrincipalRole
  tokenId: string
  /** Set for extension tokens: the extension's name. */
  extension?: string
  /** Capabilities granted (extension tokens only; empty for operator tokens). */
  grants: readonly string[]
}

/**
 * Routes an extension may never reach, whatever it was granted: secrets and the vault,
 * tokens, code execution, audit, shutdown and the management of extensions themselves.
 */
const NEVER_FOR_EXTENSIONS = [/^secrets?\./, /^vault\./, /^token\./, /^exec\./, /^ext\./, /^shutdown$/, /^kernel\./, /^db\.migrate/, /^db\.url$/, /^db\.exec/, /^audit\./, /^logs$/]

export function isNeverForExtensions(routeId: string): boolean {
  return NEVER_FOR_EXTENSIONS.some((re) => re.test(routeId))
}

/** True when `pattern` (an event type, `*`, or a prefix ending in `*`) matches `type`. */
export function matchesEventPattern(pattern: string, type: string): boolean {
  if (pattern.endsWith('*')) return type.startsWith(pattern.slice(0, -1))
  return pattern === type
}

/**
 * Exact capability check. Globs are honoured in one place only: a granted
 * `events:subscribe:<pattern>` covers `events:subscribe:<type>` for every type it matches.
 */
export function hasGrant(principal: Principal, capability: string): boolean {
  for (const g of principal.grants) {
    if (g === capability) return true
    if (g.startsWith('events:subscribe:') && capability.startsWith('events:subscribe:')) {
      if (matchesEventPattern(g.slice('events:subscribe:'.length), capability.slice('events:subscribe:'.length))) return true
    }
  }
  return false
}

/**
 * The event patterns a principal may read from /v1/events: everything for operator roles
 * (admin, operator, viewer), nothing for ci, the `events:subscribe:` grants of an extension.
 */
export function eventPatternsFor(principal: Principal): string[] {
  if (principal.role === 'admin' || principal.role === 'operator' || principal.role === 'viewer') return ['*']
  return principal.grants.filter((g) => g.startsWith('events:subscribe:')).map((g) => g.slice('events:subscribe:'.length))
}

/** May this principal read events of `type`? */
export function mayReadEvent(principal: Principal, type: string): boolean {
  return eventPatternsFor(principal).some((p) => matchesEventPattern(p, type))
}

/**
 * The role gate of the control API. Operator tokens: the route's role list. Extension
 * tokens: routes that check their own grants (`def.extensions`: events, hooks) or a route
 * granted by `api:call:<routeId>`, and never a sensitive one.
 */
export function routeAllowed(principal: Principal, def: RouteDef): boolean {
  if (principal.role !== 'extension') return def.roles.includes(principal.role)
  if (isNeverForExtensions(def.id)) return false
  if (def.extensions === true) return true
  return hasGrant(principal, `api:call:${def.id}`)
}

/**
 * The operator role of the caller, for handlers whose policy depends on it (migrations);
 * an extension token is refused there (those routes are never granted to extensions).
 */
export function operatorRole(actor: { role: PrincipalRole }, route: string): Role {
  if (actor.role === 'extension') throw FORBIDDEN({ role: 'extension', route, allowed: ['admin', 'operator', 'viewer', 'ci'] })
  return actor.role
}
