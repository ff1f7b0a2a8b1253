import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { exists } from '../platform/fs.js'
import { createReplica } from '../replication/actions.js'
import { chownTree, sleep, type PgNode, type ReplicationEnv } from '../replication/pg.js'
import type { EtcdFlockStore, EtcdLeadership } from './etcd-store.js'
import { NODE_FLOCK_LED_ELSEWHERE, NODE_LEASE_MISMATCH, NODE_NO_LEADER } from './errors.js'
import { postmasterRunning } from '../postgres/pidfile.js'
import { NodeHa, startDownInstance, type NodeHaOptions } from './node-ha.js'
import { leaseConflict, type ClusterSettings } from './node-settings.js'

/** A running node in a kernel (`live.clusterNode`): what routes read (status, switchover). */
export interface ClusterNodeRuntime {
  settings: ClusterSettings
  store: EtcdFlockStore
  leadership: EtcdLeadership
  ha: NodeHa
  local: PgNode
  env: ReplicationEnv
}

/**
 * Bringing one node of a multi-host flock up, shared by the kernel (`cluster-node` component:
 * `magflock up --etcd …`, `magflock node join …`) and the standalone agent (agent.ts):
 *
 *  - no data directory yet, bootstrap "primary": initialise it, take the leader key *before*
 *    starting Postgres (a primary that starts without it would be a second one), start it;
 *  - no data directory yet, bootstrap "replica": wait for a leader with a known address and
 *    clone it (pg_basebackup with the replication role; over TLS when this node has the CA);
 *  - a data directory whose Postgres is down (a restarted node): a standby starts as one, a
 *    former primary is fenced and the HA loop decides (resume if still leader, else rejoin);
 *  - then the node is recorded in the store's topology and the HA loop runs.
 */
export interface NodeBootOptions {
  node: string
  /** The address other nodes reach this node's Postgres at. */
  address: string
  bootstrap: 'primary' | 'replica'
  mode: 'sync' | 'async'
  /** `async`: this node's instance is never made the sync standby (`node join --async`). */
  standby?: 'sync' | 'async'
  ttlMs: number
  /** The safety margin of this node's lease (cluster.json marginMs). */
  marginMs: number
  local: PgNode
  env: ReplicationEnv
  store: EtcdFlockStore
  leadership: EtcdLeadership
  /** Creates the data directory of a first primary (initdb or a template copy). */
  init: () => Promise<void>
  /** After a bootstrapped primary started (the kernel creates the replication role here). */
  afterPrimaryStart?: () => Promise<void>
  /**
   * Refuse, instead of waiting, when another node already leads a primary bootstrap (the
   * kernel: `up --etcd` on a flock that has a primary is a mistake; the agent waits).
   */
  refuseIfLedElsewhere?: boolean
  /** How long a joining node waits for a leader to clone (default: forever). */
  joinTimeoutMs?: number
  log: (msg: string, fields?: Record<string, unknown>) => void
}


/** Records this node and its instance in the topology (retried while the store is not ready). */
export async function registerNode(o: Pick<NodeBootOptions, 'store' | 'node' | 'address' | 'local' | 'mode' | 'standby' | 'log'>, role: 'primary' | 'replica', deadline = Infinity): Promise<void> {
  const { store, node, local } = o
  for (;;) {
    try {
      await store.updateTopology((t) => ({
        nodes: { ...t.nodes, [node]: { name: node, address: o.address, joinedAt: t.nodes[node]?.joinedAt ?? new Date().toISOString(), kernel: { pid: process.pid, startedAt: new Date().toISOString() } } },
        instances: { ...t.instances, [local.name]: { name: local.name, node, role, port: local.port, sync: o.mode === 'sync' && o.standby !== 'async' } },
      }))
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      o.log('store not ready', { err: (err as Error).message })
      await sleep(200)
    }
  }
}

/**
 * Refuses a node whose lease settings would break the leader key's safety beside a node that
 * published its own (E_NODE_LEASE_MISMATCH): checked before anything starts. A store that
 * cannot be read is left to the boot's own handling.
 */
export async function checkLeaseSettings(o: Pick<NodeBootOptions, 'store' | 'node' | 'ttlMs' | 'marginMs'>): Promise<void> {
  const topo = await o.store.topology().catch(() => undefined)
  if (!topo) return
  const others = await Promise.all(Object.keys(topo.nodes).filter((n) => n !== o.node).map((n) => o.store.member(n).catch(() => null)))
  const published = others.flatMap((m) => (m && m.ttlMs !== undefined && m.marginMs !== undefined ? [{ node: m.node, ttlMs: m.ttlMs, marginMs: m.marginMs }] : []))
  const bad = leaseConflict({ node: o.node, ttlMs: o.ttlMs, marginMs: o.marginMs }, published)
  if (bad) throw NODE_LEASE_MISMATCH({ node: o.node, ttlMs: o.ttlMs, marginMs: o.marginMs, other: bad.node, otherTtlMs: bad.ttlMs, otherMarginMs: bad.marginMs })
}

/** Brings the local instance to a state the HA loop can take over; returns what it did. */
export async function bootstrapNode(o: NodeBootOptions): Promise<'initialised' | 'cloned' | 'restarted' | 'fenced' | 'running'> {
  const { env, local, store, leadership } = o
  await checkLeaseSettings(o)
  // Parents with the default mode (the Postgres OS user must traverse them), the instance
  // directory its own.
  await fsp.mkdir(path.dirname(local.instanceDir), { recursive: true })
  await fsp.mkdir(local.instanceDir, { recursive: true, mode: 0o700 })
  await chownTree(env, local.instanceDir)
  if (!(await exists(path.join(local.dataDir, 'PG_VERSION')))) {
    if (o.bootstrap === 'primary') {
      if (o.refuseIfLedElsewhere) {
        const leader = await leadership.current()
        if (leader !== undefined && leader !== o.node) throw NODE_FLOCK_LED_ELSEWHERE({ leader })
      }
      await o.init()
      // The key first: a primary that starts without it would be a second one if another node leads.
      while (!(await leadership.acquire(o.ttlMs).catch(() => false))) {
        if (o.refuseIfLedElsewhere) {
          const leader = await leadership.current().catch(() => undefined)
          if (leader !== undefined && leader !== o.node) throw NODE_FLOCK_LED_ELSEWHERE({ leader })
        }
        o.log('waiting for the leader key to bootstrap the primary')
        await sleep(500)
      }
      await env.lifecycle.start(local)
      await o.afterPrimaryStart?.()
      await store.updateStatus((s) => ({ ...s, lastLeader: o.node }))
      await registerNode(o, 'primary')
      return 'initialised'
    }
    const deadline = Date.now() + (o.joinTimeoutMs ?? Infinity)
    for (;;) {
      const [leader, topo] = await Promise.all([leadership.current(), store.topology()]).catch(() => [undefined, undefined] as const)
      const inst = topo && leader ? Object.values(topo.instances).find((i) => i.node === leader) : undefined
      const addr = topo && leader ? topo.nodes[leader]?.address : undefined
      if (inst && addr) {
        o.log('cloning the leader', { leader, instance: inst.name, address: addr })
        try {
          await createReplica(env, { name: inst.name, host: addr, port: inst.port, instanceDir: '', dataDir: '', logFile: '' }, local, { noSync: true })
        } catch (err) {
          // A half clone must not pass for a data directory at the next start.
          await env.lifecycle.stop(local, 'immediate').catch(() => undefined)
          await fsp.rm(local.dataDir, { recursive: true, force: true })
          throw err
        }
        break
      }
      if (Date.now() > deadline) throw NODE_NO_LEADER({ waitedS: Math.round((o.joinTimeoutMs ?? 0) / 1000) })
      await sleep(200)
    }
    await registerNode(o, 'replica')
    return 'cloned'
  }
  if (await postmasterRunning(local.dataDir)) return 'running'
  // A restarted node whose instance is down. A standby is started as one; a former primary
  // is fenced first: the HA loop then resumes it if this node still is (or again becomes)
  // the leader, or rejoins it to the leader elsewhere. It never starts as a primary here.
  const standby = await exists(path.join(local.dataDir, 'standby.signal'))
  try {
    await startDownInstance(env, local)
  } catch (err) {
    // A standby that does not start is left to the HA loop (it tries again); a fence must hold.
    if (!standby) throw err
    o.log('standby did not start', { err: (err as Error).message })
  }
  return standby ? 'restarted' : 'fenced'
}

/** The node's HA loop over the store, started. */
export function startNodeHa(o: Omit<NodeHaOptions, 'leadership'> & { leadership: EtcdLeadership }): NodeHa {
  const ha = new NodeHa(o)
  ha.start()
  return ha
}
