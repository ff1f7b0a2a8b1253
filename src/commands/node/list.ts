import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { EtcdFlockStore, parseEndpoints } from '../../cluster/etcd-store.js'
import { nodeList, type NodeListResult } from '../../cluster/node-list.js'

/**
 * Reads the flock store in etcd directly (no kernel is contacted, as with --db-url commands):
 * it works from any machine that reaches the etcd members, also when a node is down.
 * Exit codes: 0; 2 a bad --etcd list (E_ETCD_ENDPOINT_INVALID); 7 etcd did not answer
 * (E_FLOCK_STORE_UNAVAILABLE); 11 a store key that is not MagFlock state (E_FLOCK_STORE_CORRUPT).
 */
export default class NodeList extends MagflockCommand<NodeListResult> {
  static override summary = 'Show the nodes of a multi-host flock: kernels, instances, roles, lag, lease holder.'
  static override examples = [
    '<%= config.bin %> node list --etcd http://10.0.0.1:2379,http://10.0.0.2:2379 --flock prod',
    '<%= config.bin %> node list --etcd http://10.0.0.1:2379 --flock prod --json',
  ]
  static override flags = {
    etcd: Flags.string({ summary: 'Client URLs of the etcd members, comma separated.', required: true }),
    flock: Flags.string({ summary: 'Flock name (keys under /magflock/<flock>/).', default: 'magflock' }),
  }

  async run(): Promise<NodeListResult> {
    const { flags } = await this.parse(NodeList)
    const store = new EtcdFlockStore({ endpoints: parseEndpoints(flags.etcd), flock: flags.flock, callTimeoutMs: 3000 })
    try {
      const r = await nodeList(store, flags.flock)
      const rows = r.nodes.map((n) => [
        n.name + (n.name === r.leader ? ' *' : ''),
        n.address,
        n.kernel ? String(n.kernel.pid) : '-',
        n.instance ?? '-',
        n.standby ?? '-',
        n.role,
        n.lagBytes === null ? '-' : String(n.lagBytes),
        n.seenAgoMs === null ? '-' : `${(n.seenAgoMs / 1000).toFixed(1)} s`,
      ])
      const head = ['NODE', 'ADDRESS', 'KERNEL', 'INSTANCE', 'STANDBY', 'ROLE', 'LAG BYTES', 'SEEN']
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)))
      for (const row of [head, ...rows]) this.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '))
      this.log(`\nleader (lease holder): ${r.leader ?? 'none'}; sync standby: ${r.syncStandby ?? 'none'}`)
      if (r.lastFailover) this.log(`last failover: ${r.lastFailover.from} → ${r.lastFailover.to} at ${r.lastFailover.at}`)
      return r
    } finally {
      await store.close()
    }
  }
}
