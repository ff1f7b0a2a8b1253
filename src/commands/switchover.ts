import { Flags } from '@oclif/core'
import { switchover } from '../api/replication.js'
import { MagflockCommand } from '../cli/base-command.js'
import type { RouteOutput } from '../api/route.js'

/** The `--json` result: the route's response, as its contract (switchover) defines it. */
export type SwitchoverResult = RouteOutput<typeof switchover>

export default class Switchover extends MagflockCommand<SwitchoverResult> {
  static override summary = 'Planned role swap: promote a replica without losing any acknowledged write.'
  static override description =
    'Checkpoints and cleanly stops the primary (writes stop), waits until the target has replayed its final WAL, promotes it, ' +
    'repoints the other replicas and restarts the old primary as a replica. Without --to the most caught-up (in sync mode: synchronous) replica is chosen. ' +
    'The result (and --json) carries the milliseconds of each phase; stop + catch-up + fence + promote is the write outage.'
  static override examples = ['<%= config.bin %> switchover', '<%= config.bin %> switchover --to pg2 --json']
  static override flags = { to: Flags.string({ summary: 'Replica to promote.' }) }

  async run(): Promise<SwitchoverResult> {
    const { flags } = await this.parse(Switchover)
    const r = await this.kernel().call(switchover, flags.to ? { to: flags.to } : {}, { onProgress: (e) => this.progressLine(e.message) })
    this.log(`${r.to} is the primary (timeline ${r.timeline}); writes were paused for ${r.writeOutageMs} ms. ${r.from} now follows it.`)
    const p = r.phases
    this.log(
      `Phases (ms): checkpoint ${p.checkpointMs}, stop ${p.stopMs}, catch-up ${p.catchupMs}, fence ${p.fenceMs}, promote ${p.promoteMs} | ` +
        `repoint ${p.repointMs}, rejoin ${p.rejoinMs}, sync ${p.syncMs}; total ${r.durationMs}.`,
    )
    return r
  }
}
