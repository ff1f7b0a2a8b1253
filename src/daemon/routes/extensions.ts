import * as api from '../../api/extensions.js'
import { connectUrl } from '../../extensions/db.js'
import { EXT_DENIED, EXT_ISOLATION_UNAVAILABLE } from '../../extensions/errors.js'
import { extensionsOf, type ExtensionManager } from '../../extensions/manager.js'
import { configSchema, granted } from '../../extensions/manifest.js'
import { INVALID_REQUEST } from '../../errors/index.js'
import { redactor } from '../../secrets/redact.js'
import { handle, type DaemonRoute } from '../services.js'
import type { KernelServices, RequestContext } from '../../kernel/services.js'

/** `magflock ext …` (admin) and the broker routes an extension calls on its own socket. */
const mgr = (k: KernelServices): ExtensionManager => {
  const m = extensionsOf(k)
  if (!m) throw EXT_ISOLATION_UNAVAILABLE({ reason: 'the extensions component is not running' })
  return m
}

/** The calling extension and a check of one of its grants (denials are audited by the caller's route record). */
function self(ctx: RequestContext, k: KernelServices, capability?: string) {
  const name = ctx.principal.role === 'extension' ? ctx.principal.extension : undefined
  if (!name) throw INVALID_REQUEST({ message: 'only an extension token may call this route' })
  const e = mgr(k).registry.get(name)
  if (capability && !granted(e.grants, capability)) {
    ctx.auditDetails.denied = capability
    throw EXT_DENIED({ name, capability, action: capability.startsWith('db:') ? 'connect to that database that way' : capability === 'config:read' ? 'read its config' : 'use a state directory' })
  }
  return e
}

export const extensionRoutes: DaemonRoute[] = [
  handle(api.extInstall, async (input, ctx, k) => mgr(k).install(input, ctx.auditDetails)),
  handle(api.extList, async (_in, _ctx, k) => ({ extensions: await mgr(k).list() })),
  handle(api.extEnable, async (input, ctx, k) => {
    ctx.auditDetails.extension = input.name
    return mgr(k).enable(input.name)
  }),
  handle(api.extDisable, async (input, ctx, k) => {
    ctx.auditDetails.extension = input.name
    return mgr(k).disable(input.name)
  }),
  handle(api.extGrant, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { extension: input.name, capability: input.capability })
    return mgr(k).grant(input.name, input.capability)
  }),
  handle(api.extRevoke, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { extension: input.name, capability: input.capability })
    return mgr(k).revoke(input.name, input.capability)
  }),
  handle(api.extLogs, async (input, _ctx, k) => ({ name: input.name, lines: (await mgr(k).logs(input.name, input.lines)).map((l) => redactor.scrub(l)) })),
  handle(api.extRemove, async (input, ctx, k) => {
    ctx.auditDetails.extension = input.name
    return mgr(k).remove(input.name)
  }),

  handle(api.extSelf, async (_in, ctx, k) => {
    const e = self(ctx, k)
    return { name: e.name, version: e.version, grants: e.grants }
  }),
  handle(api.extSelfConfig, async (_in, ctx, k) => {
    const e = self(ctx, k, 'config:read')
    const parsed = configSchema(e.manifest).safeParse(mgr(k).configOf(e.name))
    if (!parsed.success) {
      const i = parsed.error.issues[0]
      throw INVALID_REQUEST({ message: `magflock.yaml extensions.${e.name}.${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}` })
    }
    return { name: e.name, config: parsed.data }
  }),
  handle(api.extSelfState, async (_in, ctx, k) => {
    const e = self(ctx, k, 'state:dir')
    return { name: e.name, dir: mgr(k).layout.stateDir(e.name) }
  }),
  handle(api.extSelfDb, async (input, ctx, k) => {
    const e = self(ctx, k, `db:connect:${input.database}:${input.mode}`)
    Object.assign(ctx.auditDetails, { extension: e.name, database: input.database, mode: input.mode })
    const r = await connectUrl(k, e.name, input.database, input.mode)
    redactor.add(new URL(r.url).password)
    ctx.auditDetails.dbRole = r.role
    return { database: input.database, mode: input.mode, role: r.role, host: r.host, port: r.port, url: r.url }
  }),
]
