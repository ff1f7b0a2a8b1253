import { kekFor } from '../backup/service.js'
import { isFirstInstance, type FlockInstances } from './instances.js'
import type { KernelServices } from '../kernel/services.js'
import type { DaemonServices } from './services.js'
import { InstanceSupervisor } from '../postgres/supervisor.js'
import { generateSecret } from '../secrets/generate.js'
import { SUPERUSER_SECRET } from '../secrets/names.js'
import { ReplicationManager, type Role, type TopologyRegistry } from '../replication/manager.js'
import { pgCtlLifecycle, type InstanceLifecycle, type PgNode } from '../replication/pg.js'
import { REPLICATOR_SECRET } from '../replication/role.js'

/**
 * Kernel glue: the replication manager over the kernel's FlockInstances (registry +
 * supervisors). Route handlers and the `failover-monitor` component
 * (components/failover-monitor.ts) build a manager per call (its state is in files and in the
 * kernel's locks, so that is cheap and race-free).
 */

function nodeOf(k: KernelServices, name: string, port: number, host: string, dataDir: string): PgNode {
  return { name, host, port, instanceDir: k.layout.instanceDir(name), dataDir, logFile: k.layout.instanceLog(name) }
}

export function kernelRegistry(k: KernelServices, instances: FlockInstances): TopologyRegistry {
  const supervisorOpts = (role: Role) => {
    const r = k.config().kernel.restart
    return {
      log: k.log.child({ instance: 'replica' }),
      events: k.events,
      restart: { policy: 'always' as const, maxRestarts: r.maxRestarts, windowMs: r.windowSeconds * 1000, initialBackoffMs: r.initialBackoffMs, maxBackoffMs: r.maxBackoffMs },
      role: role === 'primary' ? ('primary' as const) : ('replica' as const),
    }
  }
  return {
    list: () => instances.members().map((h) => ({ name: h.name, role: h.role, node: nodeOf(k, h.name, h.port, h.host, h.dataDir) })),
    async addInstance(node, role) {
      const spec = instances.specFor(node.name, node.port, k.bins, k.runAs)
      spec.portConfigKey = 'replication.basePort'
      const sup = new InstanceSupervisor(spec, { ...supervisorOpts(role), tookOver: true })
      // The clone was started by pg_ctl; the supervisor adopts that postmaster.
      await sup.start()
      instances.add(spec, role, sup)
      await instances.saveTopology()
    },
    async removeInstance(name) {
      await instances.supervisor(name)?.stop({ keepRunning: true })
      instances.remove(name)
      await instances.saveTopology()
    },
    async setRole(name, role) {
      instances.setRole(name, role)
      const sup = instances.supervisor(name)
      if (sup) sup.role = role === 'primary' ? 'primary' : 'replica'
      await instances.saveTopology()
    },
    async pauseSupervision(name) {
      await instances.supervisor(name)?.pauseSupervision()
    },
    async resumeSupervision(name) {
      const sup = instances.supervisor(name)
      if (sup) return sup.resumeSupervision()
      // An instance this kernel booted without a supervisor (it was fenced) and that was just
      // started again (rejoin): supervise it from now on.
      const m = instances.members().find((h) => h.name === name)
      if (!m) return
      const spec = instances.specFor(name, m.port, k.bins, k.runAs)
      if (!isFirstInstance(name)) spec.portConfigKey = 'replication.basePort'
      const s = new InstanceSupervisor(spec, { ...supervisorOpts(m.role), tookOver: true })
      await s.start()
      instances.add(spec, m.role, s)
    },
  }
}

/** Starts through pg_ctl, then hands the postmaster back to its supervisor (which adopts it). */
function kernelLifecycle(k: KernelServices): InstanceLifecycle {
  return pgCtlLifecycle(k.bins, k.runAs, k.config().postgres.startTimeoutSeconds)
}

export function replicationManager(k: DaemonServices): ReplicationManager {
  const inst = k.instances
  const cfg = k.config()
  return new ReplicationManager({
    layout: k.layout,
    bins: k.bins,
    runAs: k.runAs,
    superuser: cfg.postgres.superuser,
    password: async () => (await k.secrets.get(SUPERUSER_SECRET)) ?? '',
    replicatorPassword: async () => {
      const have = await k.secrets.get(REPLICATOR_SECRET)
      if (have) return have
      const fresh = generateSecret()
      await k.secrets.set(REPLICATOR_SECRET, fresh)
      return fresh
    },
    registry: kernelRegistry(k, inst),
    locks: k.locks,
    events: k.events,
    log: k.log.child({ area: 'replication' }),
    audit: k.audit,
    lifecycle: kernelLifecycle(k),
    basePort: cfg.replication.basePort,
    primaryHooks: k.primaryHooks,
    backups: { dir: k.layout.backupsDir, walDir: k.layout.walDir, kek: (m) => kekFor(k, m) },
  })
}
