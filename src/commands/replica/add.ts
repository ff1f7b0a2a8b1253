import { Args, Flags } from '@oclif/core'
import type { z } from 'zod'
import { replicaAdd } from '../../api/replication.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ReplicaAddResult = z.infer<typeof replicaAdd.output>

export default class ReplicaAdd extends MagflockCommand<ReplicaAddResult> {
  static override summary = 'Add a streaming replica of the primary (pg_basebackup with a replication slot, or from a physical backup).'
  static override description =
    'Clones the primary with pg_basebackup -R -S <name> -C into <state>/instances/<name>, starts it on the next free port from ' +
    'replication.basePort and waits until it streams. --sync makes it a synchronous standby (MagFlock manages synchronous_standby_names). ' +
    '--from-backup restores a physical backup instead (verified, extracted locally), creates the slot first and replays the WAL written since ' +
    'from the archive (<state>/wal) before streaming; it refuses a logical backup, another cluster\'s backup or a WAL gap, leaving nothing behind. ' +
    'The replica logs in as the magflock_replicator role, never as the superuser. ' +
    'On a multi-host flock a replica is a node: `replica add` (with or without --node) is refused with E_NODE_REPLICA_ADD (exit 5), whose hint is the `magflock node join --node <name> --sync|--async` to run on that host; ' +
    '--node on a one-host flock is E_REPLICA_NODE_ONE_HOST (exit 2).'
  static override examples = ['<%= config.bin %> replica add', '<%= config.bin %> replica add r2 --sync', '<%= config.bin %> replica add r3 --json', '<%= config.bin %> replica add r4 --from-backup latest']
  static override args = { name: Args.string({ description: 'Replica name (default: the next free pgN; the first instance is pg1).' }) }
  static override flags = {
    sync: Flags.boolean({ summary: 'Make it a synchronous standby (zero data loss on failover).', default: false }),
    node: Flags.string({ summary: 'Multi-host flock: the node to add (refused with the `node join` command to run on that host instead).' }),
    'from-backup': Flags.string({ summary: "Seed it from a physical backup ('latest' or an id) plus the WAL archive instead of cloning the primary." }),
  }

  async run(): Promise<ReplicaAddResult> {
    const { args, flags } = await this.parse(ReplicaAdd)
    const input = { ...(args.name ? { name: args.name } : {}), sync: flags.sync, ...(flags['from-backup'] ? { fromBackup: flags['from-backup'] } : {}), ...(flags.node !== undefined ? { node: flags.node } : {}) }
    const r = await this.kernel().call(replicaAdd, input, { onProgress: (e) => this.progressLine(e.message) })
    const from = r.backupId ? `from backup ${r.backupId}` : 'from the primary'
    this.log(`${r.name} is ${r.state} on 127.0.0.1:${r.port}${r.sync ? ' (synchronous)' : ''}, seeded ${from} in ${(r.durationMs / 1000).toFixed(1)} s.`)
    this.log('See the topology with: magflock replica list')
    return r
  }
}
