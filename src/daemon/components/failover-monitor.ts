import path from 'node:path'
import { FileLeadership } from '../../replication/leadership.js'
import { FailoverMonitor } from '../../replication/monitor.js'
import { defineComponent } from '../component.js'
import { replicationManager } from '../replication.js'

/**
 * `failover-monitor`: the observe → decide → act loop (src/replication/monitor.ts). The
 * running monitor is published as `live.failoverMonitor` for `replica list`, `status` and the
 * failover route (which hands an operator's request to this loop).
 */
export const failoverMonitorComponent = defineComponent({
  name: 'failover-monitor',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 5, windowMs: 60_000 },
  async start(ctx) {
    const k = ctx.services
    const manager = replicationManager(k)
    // A `replica add` cut short by a killed kernel: its standby, slot and directory go first.
    const rolledBack = await manager.rollbackInterruptedAdds().catch((err: unknown) => {
      ctx.log.warn({ err: (err as Error).message }, 'could not roll back an interrupted replica add yet; a retry of the add will')
      return [] as string[]
    })
    if (rolledBack.length > 0) ctx.log.warn({ names: rolledBack }, `rolled back interrupted replica add(s): ${rolledBack.join(', ')}`)
    const monitor = new FailoverMonitor({
      manager,
      leadership: new FileLeadership(path.join(k.layout.root, 'leader.json'), `kernel-${process.pid}`),
      locks: k.locks,
      log: ctx.log,
      config: () => {
        const f = k.config().replication.failover
        return { enabled: f.enabled, graceMs: f.graceSeconds * 1000, startTimeoutMs: k.config().postgres.startTimeoutSeconds * 1000 }
      },
      subscribe: (fn) => k.events.subscribe(fn),
      supervised: true,
      metrics: ctx.metrics,
    })
    monitor.start()
    k.live.failoverMonitor = monitor
    return {
      async stop() {
        if (k.live.failoverMonitor === monitor) k.live.failoverMonitor = undefined
        await monitor.stop()
      },
      health() {
        const d = monitor.lastDecision()
        return { live: true, ready: true, detail: d?.decision.sentence ?? 'starting' }
      },
    }
  },
})
