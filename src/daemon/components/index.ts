import type { MagflockConfig } from '../../config/schema.js'
import type { DaemonComponent } from '../component.js'
import { backupSchedulerComponent, walArchiverComponent } from './backup.js'
import { failoverMonitorComponent } from './failover-monitor.js'
import { metricsComponent } from './metrics.js'
import { poolerComponent } from './pooler.js'
import { postgresComponent } from './postgres.js'
import { realtimeComponent } from './realtime.js'
import { walShipperComponent } from './wal-shipper.js'

/**
 * Every component the daemon runs, declared in this folder with defineComponent
 * (src/daemon/component.ts). The kernel boots them in dependency order (`requires`), whatever
 * their order here. A component that is off in config still boots and idles, saying why,
 * except `metrics`, which is not registered at all when metrics.enabled is false.
 */
export function daemonComponents(config: MagflockConfig): DaemonComponent[] {
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
  ]
}
