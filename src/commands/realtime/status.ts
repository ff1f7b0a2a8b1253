import { realtimeStatus, type RealtimeStatus } from '../../api/realtime.js'
import { MagflockCommand } from '../../cli/base-command.js'

export default class RealtimeStatusCommand extends MagflockCommand<RealtimeStatus> {
  static override summary = 'Show the realtime server: clients, channels, commit→send latency, the change stream and its slot.'
  static override examples = ['<%= config.bin %> realtime status', '<%= config.bin %> realtime status --json']

  async run(): Promise<RealtimeStatus> {
    await this.parse(RealtimeStatusCommand)
    const r = await this.kernel().call(realtimeStatus, {})
    if (!r.enabled) {
      this.log('realtime is disabled (magflock config set realtime.enabled true, then restart the kernel)')
      return r
    }
    const ms = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)} ms`)
    this.log(`url:        ${r.url ?? '-'}`)
    this.log(`clients:    ${r.clients}   channels: ${r.channels}   postgres_changes: ${r.postgresSubscriptions}   presences: ${r.presences}`)
    this.log(`commit→send p50 ${ms(r.commitToSend.p50Ms)}, p99 ${ms(r.commitToSend.p99Ms)} (${r.commitToSend.samples} samples); backlog ${r.backlog}`)
    this.log(`dropped slow consumers: ${r.droppedSlowConsumers}   protocol errors: ${r.protocolErrors}`)
    if (r.writer) this.log(`writer:     ${r.writer.detail}${r.writer.yieldsCpu ? '; yields the CPU between flush slices' : ''}`)
    if (r.stream) {
      const mib = r.stream.retainedBytes === null ? '-' : `${(r.stream.retainedBytes / 1048576).toFixed(1)} MiB`
      this.log(`stream:     ${r.stream.detail}`)
      this.log(`slot:       ${r.stream.slot} on ${r.stream.primary ?? '-'} (database ${r.database}), retained WAL ${mib}, last commit ${r.stream.lastCommitAt ?? '-'}`)
    }
    return r
  }
}
