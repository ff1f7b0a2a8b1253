import { Args, Flags } from '@oclif/core'
import { replicaAdd, type Member } from '../../api/replication.js'
import { MagflockCommand } from '../../cli/base-command.js'

export default class ReplicaAdd extends MagflockCommand<Member> {
  static override summary = 'Add a streaming replica of the primary (pg_basebackup with a replication slot).'
  static override description =
    'Clones the primary with pg_basebackup -R -S <name> -C into <state>/instances/<name>, starts it on the next free port from ' +
    'replication.basePort and waits until it streams. --sync makes it a synchronous standby (MagFlock manages synchronous_standby_names).'
  static override examples = ['<%= config.bin %> replica add', '<%= config.bin %> replica add r2 --sync', '<%= config.bin %> replica add r3 --json']
  static override args = { name: Args.string({ description: 'Replica name (default r1, r2, …).' }) }
  static override flags = { sync: Flags.boolean({ summary: 'Make it a synchronous standby (zero data loss on failover).', default: false }) }

  async run(): Promise<Member> {
    const { args, flags } = await this.parse(ReplicaAdd)
    const r = await this.kernel().call(replicaAdd, { ...(args.name ? { name: args.name } : {}), sync: flags.sync }, { onProgress: (e) => this.progressLine(e.message) })
    this.log(`${r.name} is ${r.state} on 127.0.0.1:${r.port}${r.sync ? ' (synchronous)' : ''}.`)
    this.log('See the topology with: magflock replica list')
    return r
  }
}
