import { poolerStatus, type PoolerStatusResult } from '../../api/pooler.js'
import { MagflockCommand } from '../../cli/base-command.js'

export default class PoolerStatus extends MagflockCommand<PoolerStatusResult> {
  static override summary = 'Show the managed PgBouncer: where it points, pools, waiting clients, server connections.'
  static override description = 'Figures come from PgBouncer\'s SHOW POOLS and SHOW STATS. See docs/pooling.md.'
  static override examples = ['<%= config.bin %> pooler status', '<%= config.bin %> pooler status --json']

  async run(): Promise<PoolerStatusResult> {
    await this.parse(PoolerStatus)
    const r = await this.kernel().call(poolerStatus, {})
    if (!r.enabled) {
      this.log('pooler disabled (set pooler.enabled: true and restart the kernel)')
      return r
    }
    this.log(`pooler   ${r.running ? `pid ${r.pid}` : 'DOWN (restarting)'}  ${r.host}:${r.port}  ${r.poolMode} pooling  → ${r.primary ? `${r.primary.name} (:${r.primary.port})` : '-'}${r.paused ? '  PAUSED' : ''}`)
    this.log(`clients  ${r.totals.clientsActive} active, ${r.totals.clientsWaiting} waiting; ${r.totals.serverConnections} server connection(s)`)
    if (r.readOnly) {
      const ro = r.readOnly
      const out = ro.excluded.length > 0 ? `; left out: ${ro.excluded.map((e) => `${e.name} (${e.reason})`).join(', ')}` : ''
      this.log(`read-only <db>.ro → ${ro.serving.length > 0 ? `${ro.serving.join(', ')} (round robin${ro.via === 'sockets' ? ', Unix sockets' : ''})` : 'the primary, read-only (no replica qualifies)'}${out}${ro.note ? ` [${ro.note}]` : ''}`)
    }
    if (r.lastRepoint) this.log(`last repoint ${r.lastRepoint.from} → ${r.lastRepoint.to} at ${r.lastRepoint.at} (${r.lastRepoint.planned ? 'switchover' : 'failover'})`)
    if (r.pools.length > 0) {
      const head = ['DATABASE', 'USER', 'CL ACTIVE', 'CL WAITING', 'SV ACTIVE', 'SV IDLE', 'MAX WAIT S', 'XACTS']
      const rows = r.pools.map((p) => [
        p.database, p.user, String(p.clientsActive), String(p.clientsWaiting), String(p.serversActive), String(p.serversIdle), p.maxWaitSeconds.toFixed(3),
        String(r.stats.find((s) => s.database === p.database)?.totalXactCount ?? 0),
      ])
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)))
      for (const row of [head, ...rows]) this.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '))
    }
    return r
  }
}
