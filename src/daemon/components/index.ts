import type { MagflockConfig } from '../../config/schema.js'
import type { DaemonComponent } from '../component.js'
import { clusterNodeComponent } from './cluster-node.js'
import { backupSchedulerComponent, walArchiverComponent } from './backup.js'
import { extensionsComponent } from './extensions.js'
import { failoverMonitorComponent } from './failover-monitor.js'
import { healthComponent } from './health.js'
import { metricsComponent } from './metrics.js'
import { poolerComponent } from './pooler.js'
import { postgresComponent } from './postgres.js'
import { realtimeComponent } from './realtime-component.js'
import { walShipperComponent } from './wal-shipper.js'

/**
 * Every component the daemon runs, declared in this folder with defineComponent
 * (src/daemon/component.ts). The kernel boots them in dependency order (`requires`), whatever
 * their order here. A component that is off in config still boots and idles, saying why,
 * except `metrics` and `health`, which are not registered at all when disabled.
 */
export function daemonComponents(config: MagflockConfig, opts: { clusterNode?: boolean } = {}): DaemonComponent[] {
  // A node of a multi-host flock (cluster.json): its instance and HA loop are the cluster-node
  // component's; metrics and the health endpoints serve that instance (after cluster-node);
  // the one-host failover and the other instance-bound services are not run yet.
  if (opts.clusterNode) {
    const afterNode = (c: DaemonComponent): DaemonComponent => ({ ...c, requires: ['cluster-node'] })
    return [clusterNodeComponent, ...(config.metrics.enabled ? [afterNode(metricsComponent)] : []), ...(config.health.enabled ? [afterNode(healthComponent)] : [])]
  }
  return [
    postgresComponent,
    ...(config.metrics.enabled ? [metricsComponent] : []),
    // No-ops when disabled (backup.walArchiving false, no repository, no backup.schedule).
    walArchiverComponent,
    walShipperComponent,
    backupSchedulerComponent,
    failoverMonitorComponent,
    // Idles (and drops a leftover slot) when realtime.enabled is false.
    realtimeComponent,
    poolerComponent,
    // Patroni-compatible endpoints for load balancers, only when asked for (health.enabled).
    ...(config.health.enabled ? [healthComponent] : []),
    extensionsComponent,
  ]
}
