import { replicaList, type ReplicationStatus } from '../../api/replication.js'
import { MagflockCommand } from '../../cli/base-command.js'

export default class ReplicaList extends MagflockCommand<ReplicationStatus> {
  static override summary = 'Show the flock: role, state, LSNs, lag in bytes and seconds, sync state.'
  static override examples = ['<%= config.bin %> replica list', '<%= config.bin %> replica list --json']

  async run(): Promise<ReplicationStatus> {
    await this.parse(ReplicaList)
    const r = await this.kernel().call(replicaList, {})
    const rows = r.members.map((m) => [
      m.name,
      m.role,
      String(m.port),
      m.state,
      m.syncState ?? (m.sync ? 'sync (configured)' : '-'),
      m.replayLsn ?? '-',
      m.lagBytes === null ? '-' : String(m.lagBytes),
      m.lagSeconds === null ? '-' : m.lagSeconds.toFixed(2),
      m.timeline === null ? '-' : String(m.timeline),
    ])
    const head = ['NAME', 'ROLE', 'PORT', 'STATE', 'SYNC', 'LSN', 'LAG BYTES', 'LAG S', 'TL']
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)))
    for (const row of [head, ...rows]) this.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '))
    if (r.monitor) this.log(`\nfailover monitor: ${r.monitor.decision}`)
    if (r.lastFailover) this.log(`last failover: ${r.lastFailover.from} → ${r.lastFailover.to} at ${r.lastFailover.at} (${r.lastFailover.reason})`)
    this.log(`primary URL: ${r.primaryUrl}`)
    return r
  }
}
