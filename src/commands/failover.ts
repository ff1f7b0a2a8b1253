import { Flags } from '@oclif/core'
import { failover } from '../api/replication.js'
import { MagflockCommand } from '../cli/base-command.js'
import type { RouteOutput } from '../api/route.js'

/** The `--json` result: the route's response, as its contract (failover) defines it. */
export type FailoverResult = RouteOutput<typeof failover>

export default class Failover extends MagflockCommand<FailoverResult> {
  static override summary = 'Unplanned failover: fence the primary and promote a replica now.'
  static override description =
    'The primary is fenced first (every process killed, standby.signal and a fence marker written) so two primaries never coexist; ' +
    'then the replica with the highest replayed LSN (in sync mode: a synchronous one) is promoted. --to picks one; if another replica ' +
    'has replayed more, --force accepts losing that WAL. Bring the old primary back with `magflock replica rejoin NAME`. ' +
    "The request goes to the kernel's failover monitor, which decides on what it observes at that moment; the reason it reports " +
    '(--json `reason`, the audit log, `replica list`) is that observation.'
  static override examples = ['<%= config.bin %> failover', '<%= config.bin %> failover --to r2', '<%= config.bin %> failover --to r2 --force --json']
  static override flags = {
    to: Flags.string({ summary: 'Replica to promote.' }),
    force: Flags.boolean({ summary: 'Promote --to even if it misses WAL another replica has, or is not synchronous in sync mode.', default: false }),
  }

  async run(): Promise<FailoverResult> {
    const { flags } = await this.parse(Failover)
    const r = await this.kernel().call(failover, { ...(flags.to ? { to: flags.to } : {}), force: flags.force }, { onProgress: (e) => this.progressLine(e.message) })
    this.log(`${r.to} is the primary (timeline ${r.timeline}) after ${r.durationMs} ms; ${r.from} is fenced.`)
    for (const n of r.notRepointed) this.log(`warning: ${n.name} could not be repointed yet: ${n.error}`)
    this.log(`Bring ${r.from} back as a replica with: magflock replica rejoin ${r.from}`)
    return r
  }
}
