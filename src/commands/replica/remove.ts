import { Args } from '@oclif/core'
import { replicaRemove } from '../../api/replication.js'
import { MagflockCommand } from '../../cli/base-command.js'
import type { RouteOutput } from '../../api/route.js'

/** The `--json` result: the route's response, as its contract (replicaRemove) defines it. */
export type ReplicaRemoveResult = RouteOutput<typeof replicaRemove>

export default class ReplicaRemove extends MagflockCommand<ReplicaRemoveResult> {
  static override summary = 'Remove a replica: take it out of synchronous_standby_names, stop it, drop its slot, delete its data.'
  static override examples = ['<%= config.bin %> replica remove r2']
  static override args = { name: Args.string({ description: 'Replica name.', required: true }) }

  async run(): Promise<ReplicaRemoveResult> {
    const { args } = await this.parse(ReplicaRemove)
    const r = await this.kernel().call(replicaRemove, { name: args.name })
    this.log(`${r.name} removed${r.slotDropped ? '; its replication slot was dropped' : ''}.`)
    return r
  }
}
