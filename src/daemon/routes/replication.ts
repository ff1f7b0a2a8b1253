import * as api from '../../api/replication.js'
import { flockUrl } from '../../replication/manager.js'
import { replicationManager } from '../replication.js'
import { NODE_REPLICA_BY_JOIN, REPLICA_NODE_ONE_HOST } from '../../cluster/errors.js'
import type { RequestContext } from '../../kernel/services.js'
import { handle, type DaemonRoute } from '../services.js'

/**
 * Replication routes: thin handlers over ReplicationManager. Topology changes take the
 * kernel's `topology` lock inside the manager (E_BUSY names the holder), which is also what
 * keeps the failover monitor from acting in the middle of one.
 */
function progressOf(ctx: RequestContext) {
  return (phase: string, message: string, fraction?: number) => ctx.progress({ phase, message, ...(fraction !== undefined ? { fraction } : {}) })
}

export const replicationRoutes: DaemonRoute[] = [
  handle(api.replicaList, async (_in, _ctx, k) => {
    const mgr = replicationManager(k)
    const members = await mgr.list()
    const cfg = k.config()
    const s = await mgr.state.read()
    const d = k.live.failoverMonitor?.lastDecision()
    const urlOf = (role: 'primary' | 'any') => flockUrl({ members, user: cfg.postgres.superuser, database: cfg.postgres.database, role })
    return {
      members,
      primaryUrl: urlOf('primary'),
      anyUrl: urlOf('any'),
      monitor: d ? { decision: d.decision.sentence, at: new Date(d.at).toISOString() } : null,
      failoversTotal: s.failoversTotal,
      lastFailover: s.lastFailover ?? null,
    }
  }),

  handle(api.replicaAdd, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { name: input.name, sync: input.sync, fromBackup: input.fromBackup, node: input.node })
    // Multi-host: one instance per node, and a node's instance comes from `node join` on its
    // own host (its kernel, its TLS material); a one-host flock has no nodes to name.
    if (k.live.clusterNode) throw NODE_REPLICA_BY_JOIN({ node: input.node })
    if (input.node !== undefined) throw REPLICA_NODE_ONE_HOST({ node: input.node })
    const r = await replicationManager(k).add({ name: input.name, sync: input.sync, fromBackup: input.fromBackup }, progressOf(ctx))
    Object.assign(ctx.auditDetails, { name: r.name, port: r.port, source: r.source, backupId: r.backupId })
    return r
  }),

  handle(api.replicaRemove, async (input, ctx, k) => {
    ctx.auditDetails.name = input.name
    const r = await replicationManager(k).remove(input.name)
    ctx.auditDetails.slotDropped = r.slotDropped
    return r
  }),

  handle(api.replicaRejoin, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { name: input.name, reclone: input.reclone })
    const r = await replicationManager(k).rejoin(input.name, { allowReclone: input.reclone }, progressOf(ctx))
    Object.assign(ctx.auditDetails, { method: r.method, durationMs: r.durationMs })
    return r
  }),

  handle(api.switchover, async (input, ctx, k) => {
    ctx.auditDetails.to = input.to
    // A node of a multi-host flock: the request goes through the flock store to the leader's node.
    const node = k.live.clusterNode
    const r = node
      ? await (await import('../../cluster/switchover.js')).requestSwitchover({ store: node.store, leadership: node.leadership, mode: node.settings.mode }, input.to, progressOf(ctx))
      : await replicationManager(k).switchover({ to: input.to }, progressOf(ctx))
    Object.assign(ctx.auditDetails, { from: r.from, to: r.to, writeOutageMs: r.writeOutageMs, timeline: r.timeline })
    return r
  }),

  handle(api.failover, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { to: input.to, force: input.force })
    // The API records the intent; the failover monitor's loop observes, decides and acts
    // (Patroni's rule). Without a running monitor, the manager probes the primary itself.
    const monitor = k.live.failoverMonitor
    const r = monitor
      ? await monitor.requestFailover({ to: input.to, force: input.force }, progressOf(ctx))
      : await replicationManager(k).failover({ to: input.to, force: input.force, automatic: false }, progressOf(ctx))
    Object.assign(ctx.auditDetails, { from: r.from, to: r.to, reason: r.reason, timeline: r.timeline, durationMs: r.durationMs })
    return { from: r.from, to: r.to, reason: r.reason, timeline: r.timeline, durationMs: r.durationMs, repointed: r.repointed, notRepointed: r.notRepointed }
  }),
]
