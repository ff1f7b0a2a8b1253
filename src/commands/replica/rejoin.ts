import { Args, Flags } from '@oclif/core'
import { replicaRejoin } from '../../api/replication.js'
import { MagflockCommand } from '../../cli/base-command.js'
import type { RouteOutput } from '../../api/route.js'

/** The `--json` result: the route's response, as its contract (replicaRejoin) defines it. */
export type ReplicaRejoinResult = RouteOutput<typeof replicaRejoin>

export default class ReplicaRejoin extends MagflockCommand<ReplicaRejoinResult> {
  static override summary = 'Bring a fenced old primary back as a replica of the current primary (pg_rewind, else a fresh clone).'
  static override examples = ['<%= config.bin %> replica rejoin pg1', '<%= config.bin %> replica rejoin pg1 --no-reclone']
  static override args = { name: Args.string({ description: 'Instance name.', required: true }) }
  static override flags = {
    reclone: Flags.boolean({ summary: 'Re-clone when pg_rewind is impossible (deletes its data dir).', default: true, allowNo: true }),
  }

  async run(): Promise<ReplicaRejoinResult> {
    const { args, flags } = await this.parse(ReplicaRejoin)
    const r = await this.kernel().call(replicaRejoin, { name: args.name, reclone: flags.reclone }, { onProgress: (e) => this.progressLine(e.message) })
    this.log(`${r.name} follows the primary again (${r.method === 'none' ? 'no rewind needed' : r.method}, ${(r.durationMs / 1000).toFixed(1)} s).`)
    return r
  }
}
