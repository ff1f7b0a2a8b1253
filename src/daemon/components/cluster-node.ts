import { promises as fsp } from 'node:fs'
import { NODE_SECRETS_MISSING } from '../../cluster/errors.js'
import type { ClusterNodeRuntime } from '../../cluster/node-boot.js'
import type { NodeHa } from '../../cluster/node-ha.js'
import { nodeInstanceName, readClusterSettings } from '../../cluster/node-settings.js'
import { initInstance, writeInstanceConf } from '../../postgres/instance.js'
import { writeSuperuserPgpass } from '../../postgres/pgpass.js'
import { ensureReplicator, REPLICATOR_ROLE, REPLICATOR_SECRET } from '../../replication/role.js'
import { clientConfig, pgCtlLifecycle, type PgNode, type ReplicationEnv } from '../../replication/pg.js'
import { generateSecret } from '../../secrets/generate.js'
import { SUPERUSER_SECRET } from '../../secrets/names.js'
import { tlsLayout } from '../../tls/material.js'
import { listenAddresses } from '../../tls/postgres.js'
import { writeFileAtomic } from '../../platform/fs.js'
import type { OsUser } from '../../platform/os-user.js'
import path from 'node:path'
import { defineComponent } from '../component.js'

/**
 * `cluster-node`: the kernel as one node of a multi-host flock (`<state>/cluster.json`, written
 * by `magflock up --etcd … --node … --listen …` or `magflock node join …`). It takes the
 * place of the one-host `postgres` and `failover-monitor` components: the flock store is etcd,
 * the local instance is brought up by the shared node bootstrap (src/cluster/node-boot.ts:
 * initdb + leader key first on the first node, pg_basebackup of the leader over TLS with the
 * replication role on a joining node), then the node's HA loop (NodeHa: lease renewal,
 * dead-man self-demotion, promotion, rejoin) runs until the kernel stops.
 *
 * Stopping: `magflock down` stops Postgres (fast: a sync standby has every commit) and then
 * gives the leader key back, so the sync standby promotes at once instead of after the TTL.
 * `kernel stop` (and a killed kernel) leave Postgres and the key alone: the next kernel on
 * this node takes the key over by value, without a failover.
 */
export const clusterNodeComponent = defineComponent({
  name: 'cluster-node',
  requires: [],
  restart: { policy: 'never' },
  stopTimeoutMs: 60_000,
  async start(ctx) {
    const k = ctx.services
    const cfg = k.config()
    // etcd3 (gRPC) loads only in a node's kernel, never in a one-host flock's.
    const { EtcdFlockStore } = await import('../../cluster/etcd-store.js')
    const { bootstrapNode, registerNode, startNodeHa } = await import('../../cluster/node-boot.js')
    const { NodeSwitchover } = await import('../../cluster/switchover.js')
    const settings = await readClusterSettings(k.layout.root)
    if (!settings) throw new Error('cluster-node runs only on a node (cluster.json)')
    const name = nodeInstanceName(settings.node)
    const spec = k.instances.specFor(name, cfg.postgres.port, k.bins, k.runAs)
    const fresh = !(await fsp.stat(spec.dataDir).then(() => true, () => false))

    // A first node generates the flock's passwords when it initialises the primary (not
    // before: a refused start leaves no secret behind); a joining node must have them.
    let password = (await k.secrets.get(SUPERUSER_SECRET)) ?? ''
    let replicator = (await k.secrets.get(REPLICATOR_SECRET)) ?? ''
    if (settings.bootstrap === 'replica' && fresh) {
      const missing = [...(password ? [] : [SUPERUSER_SECRET]), ...(replicator ? [] : [REPLICATOR_SECRET])]
      if (missing.length > 0) throw NODE_SECRETS_MISSING({ names: missing })
    }
    const ctl = pgCtlLifecycle(k.bins, k.runAs, cfg.postgres.startTimeoutSeconds)
    const peerCa = await fsp.readFile(tlsLayout(k.layout.root).pgCa, 'utf8').catch(() => undefined)
    // The kernel's own SQL reaches the local instance on 127.0.0.1; other nodes reach it at
    // the node's address (the topology), over hostssl.
    const local: PgNode = { name, host: '127.0.0.1', port: spec.port, instanceDir: spec.instanceDir, dataDir: spec.dataDir, logFile: spec.logFile }
    const log = ctx.log.child({ node: settings.node })
    const env: ReplicationEnv = {
      bins: k.bins,
      runAs: k.runAs,
      superuser: cfg.postgres.superuser,
      password,
      replicator: { user: REPLICATOR_ROLE, password: replicator },
      // Every start rewrites magflock.conf and the managed pg_hba block for THIS node: a clone
      // carries the leader's files (its address, its certificate paths).
      lifecycle: {
        async start(node) {
          await writeInstanceConf(spec)
          await listenOnNodeAddress(node.dataDir, listenAddresses(k.config()).join(','), k.runAs)
          await ctl.start(node)
        },
        stop: (node, mode, opts) => ctl.stop(node, mode, opts),
      },
      log: (msg, fields) => log.info(fields ?? {}, msg),
      ...(peerCa ? { peerCa } : {}),
    }
    const store = new EtcdFlockStore({ endpoints: settings.etcd, flock: cfg.flock, callTimeoutMs: Math.min(1000, Math.round(settings.ttlMs / 3)) })
    const leadership = store.leadership(settings.node, { ttlMs: settings.ttlMs })
    let ha: NodeHa | undefined
    try {
      const how = await bootstrapNode({
        node: settings.node,
        address: settings.listen,
        bootstrap: settings.bootstrap,
        mode: settings.mode,
        standby: settings.standby,
        ttlMs: settings.ttlMs,
        marginMs: settings.marginMs,
        local,
        env,
        store,
        leadership,
        init: async () => {
          if (!password) {
            password = generateSecret()
            await k.secrets.set(SUPERUSER_SECRET, password)
            env.password = password
          }
          await initInstance(spec, password)
        },
        afterPrimaryStart: async () => {
          if (!replicator) {
            replicator = generateSecret()
            await k.secrets.set(REPLICATOR_SECRET, replicator)
            env.replicator = { user: REPLICATOR_ROLE, password: replicator }
          }
          await ensureReplicator(clientConfig(env, local), replicator)
        },
        refuseIfLedElsewhere: true,
        joinTimeoutMs: 120_000,
        log: (msg, fields) => log.info(fields ?? {}, msg),
      })
      log.info({ how }, `node ${settings.node}: local instance ${how}`)
      if (how !== 'initialised' && how !== 'cloned') {
        // The same node again (a restarted kernel): record this kernel, keep the role.
        const topo = await store.topology().catch(() => undefined)
        const role = topo?.instances[name]?.role
        if (role === 'primary' || role === 'replica') await registerNode({ store, node: settings.node, address: settings.listen, local, mode: settings.mode, standby: settings.standby, log: () => undefined }, role, Date.now() + 10_000).catch(() => undefined)
      }
      if (password) await writeSuperuserPgpass(k.layout.pgpass, { hosts: ['127.0.0.1', 'localhost'], user: cfg.postgres.superuser, password })
      k.instances.add(spec, how === 'cloned' || how === 'restarted' ? 'replica' : how === 'fenced' ? 'fenced' : 'primary', undefined)
      ha = startNodeHa({
        node: settings.node,
        store,
        leadership,
        env,
        local,
        mode: settings.mode,
        ttlMs: settings.ttlMs,
        marginMs: settings.marginMs,
        loopMs: settings.loopMs,
        failoverEnabled: cfg.replication.failover.enabled,
        log: (msg, fields) => log.info(fields ?? {}, msg),
        onDecision: (_d, o) => {
          if (o.local === 'primary' || o.local === 'replica' || o.local === 'fenced') k.instances.setRole(name, o.local)
        },
      })
    } catch (err) {
      await store.close().catch(() => undefined)
      throw err
    }
    const runtime: ClusterNodeRuntime = { settings, store, leadership, ha, local, env }
    // Switchover requests recorded for this node (by any kernel of the flock).
    const switchovers = new NodeSwitchover({ node: settings.node, store, leadership, ha, env, local, mode: settings.mode, log: (msg, fields) => log.info(fields ?? {}, msg) })
    switchovers.start()
    k.live.clusterNode = runtime
    return {
      async stop() {
        if (k.live.clusterNode === runtime) k.live.clusterNode = undefined
        await switchovers.stop()
        await runtime.ha.stop()
        if (k.instances.keepRunningOnStop === false) {
          await ctl.stop(local, 'fast').catch((err: unknown) => log.warn({ err: (err as Error).message }, 'postgres did not stop'))
          await leadership.release().catch(() => undefined)
        }
        await store.close()
      },
      health() {
        const d = runtime.ha.lastDecision()
        return { live: true, ready: true, detail: d?.decision.sentence ?? 'starting' }
      },
    }
  },
})

/**
 * A standby's postgresql.auto.conf names the address its clone or rewind was set up for
 * (listen_addresses there wins over magflock.conf): the node's addresses, at every start.
 */
async function listenOnNodeAddress(dataDir: string, listen: string, runAs: OsUser | undefined): Promise<void> {
  const file = path.join(dataDir, 'postgresql.auto.conf')
  const cur = await fsp.readFile(file, 'utf8').catch(() => undefined)
  if (cur === undefined || !/^\s*listen_addresses\s*=/m.test(cur)) return
  const next = cur.replace(/^\s*listen_addresses\s*=.*$/m, `listen_addresses = '${listen.replace(/'/g, "''")}'`)
  if (next !== cur) await writeFileAtomic(file, next, { mode: 0o600, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) })
}
