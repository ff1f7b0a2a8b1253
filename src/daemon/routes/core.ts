import { promises as fsp } from 'node:fs'
import * as core from '../../api/core.js'
import { AuditLog, auditPathsOf, storeKeyring } from '../../kernel/audit.js'
import { handle, type DaemonRoute } from '../services.js'
import { VERSION } from '../../kernel/version.js'
import { flockUrl } from '../../replication/manager.js'

export const coreRoutes: DaemonRoute[] = [
  handle(core.status, async (_in, _ctx, k) => {
    const kernel = k.kernel
    const cfg = k.config()
    const lag = k.live.failoverMonitor?.replication
    const instances = kernel.instances.statuses().map((i) => {
      if (i.role !== 'replica') return i
      const r = lag?.get(i.name)
      return { ...i, replication: r ? { state: r.state, syncState: r.syncState, lagBytes: r.lagBytes, lagSeconds: r.lagSeconds, observedAt: new Date(r.at).toISOString() } : null }
    })
    return {
      kernel: {
        pid: process.pid,
        version: VERSION,
        startedAt: kernel.startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - kernel.startedAt.getTime()) / 1000),
        stateDir: k.layout.root,
        socket: k.layout.socket,
        env: k.env,
        metricsUrl: cfg.metrics.enabled ? `http://127.0.0.1:${cfg.metrics.port}/metrics` : null,
      },
      components: await kernel.components.status(),
      instances,
      primaryUrl: instances.length
        ? flockUrl({ members: kernel.instances.members(), user: cfg.postgres.superuser, database: cfg.postgres.database, role: 'primary' })
        : null,
    }
  }),

  handle(core.shutdown, async (input, ctx, k) => {
    ctx.auditDetails.keepPostgres = input.keepPostgres
    // Answer first, then stop: the caller waits for kernel.json to disappear.
    setTimeout(() => void k.kernel.shutdown({ keepPostgres: input.keepPostgres, reason: `requested by ${ctx.actor.name}` }), 20)
    return { stopping: true }
  }),

  handle(core.instanceRemove, async (input, ctx, k) => {
    ctx.auditDetails.keepData = input.keepData
    // Not while a restore or switchover changes the topology.
    const release = k.locks.acquire('topology', 'instance remove')
    try {
      return await k.kernel.instances.removeStandalone(input.name, input.keepData)
    } finally {
      release()
    }
  }),

  handle(core.tokenCreate, async (input, ctx, k) => {
    const t = await k.kernel.tokens.create({ role: input.role, name: input.name })
    ctx.auditDetails.tokenId = t.id
    ctx.auditDetails.role = input.role
    return t
  }),

  handle(core.tokenList, async (_in, _ctx, k) => ({ tokens: await k.kernel.tokens.list() })),

  handle(core.tokenRevoke, async (input, ctx, k) => {
    await k.kernel.tokens.revoke(input.id)
    ctx.auditDetails.tokenId = input.id
    return { revoked: input.id }
  }),

  handle(core.auditVerify, async (_in, _ctx, k) =>
    AuditLog.verify(auditPathsOf(k.layout), { keyring: storeKeyring(k.secrets) }),
  ),

  handle(core.metrics, async (_in, _ctx, k) => ({ contentType: k.metrics.contentType, text: await k.metrics.metrics() })),

  handle(core.logs, async (input, _ctx, k) => {
    const text = await fsp.readFile(k.layout.kernelLog, 'utf8').catch(() => '')
    const lines = text.split('\n').filter(Boolean)
    return { lines: lines.slice(-input.lines) }
  }),
]
