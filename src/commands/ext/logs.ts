import { Args, Flags } from '@oclif/core'
import { extLogs } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtLogsResult = { name: string; lines: string[] }

export default class ExtLogs extends MagflockCommand<ExtLogsResult> {
  static override summary = "Show the last lines an extension wrote to stdout and stderr (secret values scrubbed)."
  static override description = 'Admin only. Exit code 3: no such extension.'
  static override examples = ['<%= config.bin %> ext logs webhook', '<%= config.bin %> ext logs webhook --lines 500 --json']
  static override args = { name: Args.string({ required: true, description: 'Extension name.' }) }
  static override flags = { lines: Flags.integer({ summary: 'How many lines.', default: 100, min: 1, max: 10_000 }) }

  async run(): Promise<ExtLogsResult> {
    const { args, flags } = await this.parse(ExtLogs)
    const r = await this.kernel().call(extLogs, { name: args.name, lines: flags.lines })
    for (const l of r.lines) this.log(l)
    return r
  }
}
