import { nodeInvite } from '../../api/node.js'
import { NODE_INVITE_NOT_A_NODE } from '../../cluster/errors.js'
import { createInvite } from '../../cluster/join-bundle.js'
import { parseEndpoints } from '../../cluster/endpoints.js'
import { handle, type DaemonRoute } from '../services.js'

export const nodeRoutes: DaemonRoute[] = [
  // The join bundle is sealed here, where the CA key is; the audit record names the node and
  // its certificate, never the bundle, its code or what it holds.
  handle(nodeInvite, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { node: input.node, sans: input.sans, validHours: input.validHours, renew: input.renew })
    const node = k.live.clusterNode
    if (!node) throw NODE_INVITE_NOT_A_NODE({})
    const r = await createInvite({
      stateRoot: k.layout.root,
      config: k.config(),
      secrets: k.secrets,
      inviter: { node: node.settings.node, etcd: node.settings.etcd, ttlMs: node.settings.ttlMs },
      existingNodes: async () => Object.keys((await node.store.topology()).nodes),
      request: { node: input.node, sans: input.sans, etcd: input.etcd !== undefined ? parseEndpoints(input.etcd) : undefined, validHours: input.validHours, renew: input.renew },
    })
    Object.assign(ctx.auditDetails, { flock: r.summary.flock, etcd: r.summary.etcd, certFingerprint: r.summary.certFingerprint, certNotAfter: r.summary.certNotAfter, expiresAt: r.summary.expiresAt })
    return { ...r.summary, bundle: r.bundle, code: r.code }
  }),
]
