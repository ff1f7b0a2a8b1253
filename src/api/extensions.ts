import { z } from 'zod'
import { ADMIN_ONLY, defineRoute, type Role } from './route.js'

/**
 * The extension plane (docs/extensions.md). Management routes are admin-only: installing or
 * enabling an extension makes the kernel run code. The `ext.self*` routes are for extension
 * tokens only (no role reaches them): an extension asks the broker for what it was granted.
 */
const NAME = z.string().min(1).max(64)
const EXTENSIONS_ONLY: readonly Role[] = []

export const ExtState = z.enum(['disabled', 'starting', 'running', 'restarting', 'exited', 'failed'])

export const ExtInfo = z.object({
  name: z.string(),
  version: z.string(),
  description: z.string().nullable(),
  source: z.string(),
  installedAt: z.string(),
  enabled: z.boolean(),
  requested: z.array(z.string()),
  grants: z.array(z.string()),
  state: ExtState,
  pid: z.number().nullable(),
  restarts: z.number(),
  osUser: z.string(),
  memoryMb: z.number(),
  /** How the memory limit is enforced: cgroup2, cgroup1, or node-heap (NODE_OPTIONS only). */
  memoryLimit: z.string().nullable(),
  lastExit: z.object({ at: z.string(), code: z.number().nullable(), signal: z.string().nullable(), reason: z.string() }).nullable(),
  detail: z.string(),
})
export type ExtInfo = z.infer<typeof ExtInfo>

export const extInstall = defineRoute({
  id: 'ext.install',
  method: 'POST',
  path: '/v1/ext/install',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({
    source: z.string().min(1).max(1024),
    grants: z.array(z.string().max(200)).max(64).default([]),
    enable: z.boolean().default(false),
  }),
  output: ExtInfo,
})

export const extList = defineRoute({ id: 'ext.list', method: 'GET', path: '/v1/ext', roles: ADMIN_ONLY, mutating: false, input: z.object({}), output: z.object({ extensions: z.array(ExtInfo) }) })

export const extEnable = defineRoute({ id: 'ext.enable', method: 'POST', path: '/v1/ext/enable', roles: ADMIN_ONLY, mutating: true, input: z.object({ name: NAME }), output: ExtInfo })
export const extDisable = defineRoute({ id: 'ext.disable', method: 'POST', path: '/v1/ext/disable', roles: ADMIN_ONLY, mutating: true, input: z.object({ name: NAME }), output: ExtInfo })

const GrantInput = z.object({ name: NAME, capability: z.string().min(1).max(200) })
export const extGrant = defineRoute({ id: 'ext.grant', method: 'POST', path: '/v1/ext/grant', roles: ADMIN_ONLY, mutating: true, input: GrantInput, output: ExtInfo })
export const extRevoke = defineRoute({ id: 'ext.revoke', method: 'POST', path: '/v1/ext/revoke', roles: ADMIN_ONLY, mutating: true, input: GrantInput, output: ExtInfo })

export const extLogs = defineRoute({
  id: 'ext.logs',
  method: 'GET',
  path: '/v1/ext/logs',
  roles: ADMIN_ONLY,
  mutating: false,
  input: z.object({ name: NAME, lines: z.coerce.number().int().min(1).max(10_000).default(100) }),
  output: z.object({ name: z.string(), lines: z.array(z.string()) }),
})

export const extRemove = defineRoute({
  id: 'ext.remove',
  method: 'POST',
  path: '/v1/ext/remove',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({ name: NAME }),
  output: z.object({ name: z.string(), removed: z.boolean(), osUserRemoved: z.boolean() }),
})

// ---- for extension tokens (on the extension's own socket) ----

export const extSelf = defineRoute({
  id: 'ext.self',
  method: 'GET',
  path: '/v1/ext/self',
  roles: EXTENSIONS_ONLY,
  mutating: false,
  input: z.object({}),
  output: z.object({ name: z.string(), version: z.string(), grants: z.array(z.string()) }),
})

export const extSelfConfig = defineRoute({
  id: 'ext.self.config',
  method: 'GET',
  path: '/v1/ext/self/config',
  roles: EXTENSIONS_ONLY,
  mutating: false,
  input: z.object({}),
  output: z.object({ name: z.string(), config: z.record(z.string(), z.unknown()) }),
})

export const extSelfState = defineRoute({
  id: 'ext.self.state',
  method: 'GET',
  path: '/v1/ext/self/state',
  roles: EXTENSIONS_ONLY,
  mutating: false,
  input: z.object({}),
  output: z.object({ name: z.string(), dir: z.string() }),
})

export const extSelfDb = defineRoute({
  id: 'ext.self.db',
  method: 'POST',
  path: '/v1/ext/self/db',
  roles: EXTENSIONS_ONLY,
  // Hands out a credential: audited like `db url`.
  mutating: true,
  input: z.object({ database: z.string().min(1).max(63), mode: z.enum(['ro', 'rw']) }),
  output: z.object({ database: z.string(), mode: z.enum(['ro', 'rw']), role: z.string(), host: z.string(), port: z.number(), url: z.string() }),
})

/** Routes an extension reaches without an api:call grant (each checks its own capability). */
export const EXTENSION_SELF_ROUTES: ReadonlySet<string> = new Set([extSelf.id, extSelfConfig.id, extSelfState.id, extSelfDb.id])
