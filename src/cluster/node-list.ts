import type { FlockStore } from './store.js'
import { lagBytes } from './node-ha.js'

/**
 * What `magflock node list` shows: every node of the flock with its kernel and instance, the
 * role each node last published, WAL lag behind the leader, the leader-key holder, the sync
 * standby and the last failover. Read from the flock store only (no node is contacted), so it
 * works from any machine that reaches etcd.
 */
export interface NodeListResult {
  flock: string
  leader: string | null
  syncStandby: string | null
  nodes: Array<{
    name: string
    address: string
    kernel: { pid: number; startedAt: string } | null
    instance: string | null
    /** How the node joined (`node join --sync|--async`): only a `sync` one may be the sync standby. */
    standby: 'sync' | 'async' | null
    role: 'primary' | 'replica' | 'fenced' | 'down' | 'unknown'
    lsn: string | null
    lagBytes: number | null
    /** Milliseconds since the node last published its member record (null: never). */
    seenAgoMs: number | null
    decision: string | null
  }>
  lastFailover: { from: string; to: string; at: string; reason: string } | null
}

export async function nodeList(store: FlockStore, flock: string, now = Date.now()): Promise<NodeListResult> {
  const [topo, status, history, leader] = await Promise.all([store.topology(), store.status(), store.history(), store.leadership('node-list').current()])
  const names = Object.keys(topo.nodes).sort()
  const members = await Promise.all(names.map((n) => store.member(n)))
  const leaderLsn = members.find((m) => m?.node === leader)?.lsn
  const nodes = names.map((name, i) => {
    const n = topo.nodes[name]
    const m = members[i] ?? null
    const inst = Object.values(topo.instances).find((x) => x.node === name)
    return {
      name,
      address: n?.address ?? '',
      kernel: n?.kernel ? { pid: n.kernel.pid, startedAt: n.kernel.startedAt } : null,
      instance: inst?.name ?? null,
      standby: inst ? (inst.sync ? ('sync' as const) : ('async' as const)) : null,
      role: m?.role ?? ('unknown' as const),
      lsn: m?.lsn ?? null,
      lagBytes: m?.role === 'replica' ? (lagBytes(leaderLsn, m.lsn) ?? null) : null,
      seenAgoMs: m ? Math.max(0, now - m.at) : null,
      decision: m?.sentence ?? null,
    }
  })
  const last = history.at(-1)
  return {
    flock,
    leader: leader ?? null,
    syncStandby: status.syncStandby,
    nodes,
    lastFailover: last ? { from: last.from, to: last.to, at: last.at, reason: last.reason } : null,
  }
}
