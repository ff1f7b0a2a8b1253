import { z } from 'zod'
import { isNeverForExtensions } from '../kernel/grants.js'
import { EXT_CAPABILITY_INVALID, EXT_NAME_INVALID } from './errors.js'

/**
 * The manifest of an extension: `magflock-extension.json` at the root of its directory or npm
 * package (docs/extensions.md, "Manifest reference"). It says what to run and what the
 * extension would like to do; it grants nothing: the operator approves each capability.
 */
export const EXT_NAME_RE = /^[a-z][a-z0-9-]{0,23}$/
export const MANIFEST_FILE = 'magflock-extension.json'

export function checkExtName(name: string): string {
  if (!EXT_NAME_RE.test(name)) throw EXT_NAME_INVALID({ name })
  return name
}

/** One setting the extension accepts in magflock.yaml under `extensions.<name>`. */
export const ConfigField = z
  .object({
    type: z.enum(['string', 'number', 'boolean', 'string[]']),
    description: z.string().max(500).optional(),
    required: z.boolean().optional(),
    default: z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]).optional(),
  })
  .strict()

export const Manifest = z
  .object({
    name: z.string().regex(EXT_NAME_RE, 'lowercase letter, then lowercase letters, digits and "-", at most 24 characters'),
    version: z.string().regex(/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/, 'a semantic version such as 1.0.0'),
    description: z.string().max(500).optional(),
    /**
     * The argv to run, cwd = the extension's state directory. `node` as the first word is the
     * kernel's own Node; a word starting with `./` is a file of the package.
     */
    entry: z.array(z.string().min(1).max(500)).min(1).max(32),
    capabilities: z.array(z.string().max(200)).max(64).default([]),
    config: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9_]{0,63}$/), ConfigField).default({}),
    /** Memory limit of the process, MiB (at most 4096; default 256). */
    memoryMb: z.number().int().min(32).max(4096).default(256),
    /** When set, the extension must make an API call at least this often, or it counts as hung and is restarted. */
    heartbeatSeconds: z.number().int().min(2).max(3600).optional(),
  })
  .strict()
export type Manifest = z.infer<typeof Manifest>

export const HOOK_POINTS = ['backup.before', 'backup.after', 'replication.role_changed', 'failover.after', 'migrate.before'] as const

/**
 * Routes an extension can never be granted, whatever the operator types: they hand out
 * secrets or tokens, run code, or manage extensions (an extension granting itself more).
 */
const NEVER_GRANTABLE_ROUTE = /^(secrets\.|token\.|ext\.|backup\.rekey$|db\.migrate$|shutdown$|logs$|config\.reload$)/

/** The kernel's never-for-extensions list (src/kernel/grants.ts) plus the vault-key and reload routes. */
export function neverGrantable(routeId: string): boolean {
  return NEVER_GRANTABLE_ROUTE.test(routeId) || isNeverForExtensions(routeId)
}

export type Capability =
  | { kind: 'events:subscribe'; pattern: string }
  | { kind: 'api:call'; route: string }
  | { kind: 'db:connect'; database: string; mode: 'ro' | 'rw' }
  | { kind: 'config:read' }
  | { kind: 'state:dir' }
  | { kind: 'hooks'; point: string; effect: 'observe' | 'veto' }

/**
 * Parses one capability string; throws E_EXT_CAPABILITY_INVALID naming what is wrong.
 * `knownRoutes` (route ids) refuses an api:call of a route that does not exist.
 */
export function parseCapability(cap: string, knownRoutes?: ReadonlySet<string>): Capability {
  const bad = (reason: string) => EXT_CAPABILITY_INVALID({ capability: cap.slice(0, 200), reason })
  if (cap === 'config:read') return { kind: 'config:read' }
  if (cap === 'state:dir') return { kind: 'state:dir' }
  let m = /^events:subscribe:([a-z][a-z0-9_.]*\*?|\*)$/.exec(cap)
  if (m) return { kind: 'events:subscribe', pattern: m[1]! }
  if (cap.startsWith('events:subscribe:')) throw bad('an event pattern is a type such as backup.failed, or a prefix ending in * (replication.*)')
  m = /^api:call:([a-z][a-z0-9_.]*)$/.exec(cap)
  if (m) {
    const route = m[1]!
    if (neverGrantable(route)) throw bad(`route ${route} is never grantable to an extension (secrets, tokens, code execution, extension management)`)
    if (knownRoutes && !knownRoutes.has(route)) throw bad(`there is no route "${route}"`)
    return { kind: 'api:call', route }
  }
  if (cap.startsWith('api:call:')) throw bad('api:call takes one route id, e.g. api:call:status')
  m = /^db:connect:([a-z_][a-z0-9_]{0,62}):(ro|rw)$/.exec(cap)
  if (m) return { kind: 'db:connect', database: m[1]!, mode: m[2] as 'ro' | 'rw' }
  if (cap.startsWith('db:connect:')) throw bad('db:connect takes a database name and ro or rw, e.g. db:connect:app:ro')
  m = /^hooks:([a-z._]+):(observe|veto)$/.exec(cap)
  if (m) {
    if (!(HOOK_POINTS as readonly string[]).includes(m[1]!)) throw bad(`hook points are ${HOOK_POINTS.join(', ')}`)
    return { kind: 'hooks', point: m[1]!, effect: m[2] as 'observe' | 'veto' }
  }
  throw bad('unknown capability')
}

/** Whether `grants` holds `capability` exactly (event patterns are matched by the events stream). */
export function granted(grants: readonly string[], capability: string): boolean {
  return grants.includes(capability)
}

/** The zod schema of an extension's config namespace, built from its manifest. */
export function configSchema(m: Manifest): z.ZodType<Record<string, unknown>> {
  const shape: Record<string, z.ZodType> = {}
  for (const [key, f] of Object.entries(m.config)) {
    let t: z.ZodType = f.type === 'string' ? z.string() : f.type === 'number' ? z.number() : f.type === 'boolean' ? z.boolean() : z.array(z.string())
    if (f.default !== undefined) t = t.default(f.default as never)
    else if (!f.required) t = t.optional()
    shape[key] = t
  }
  return z.object(shape).strict() as unknown as z.ZodType<Record<string, unknown>>
}
