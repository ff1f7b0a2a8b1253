import { Args } from '@oclif/core'
import { extRemove } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtRemoveResult = { name: string; removed: boolean; osUserRemoved: boolean }

export default class ExtRemove extends MagflockCommand<ExtRemoveResult> {
  static override summary = 'Stop and remove an extension: its files, state directory, database role and OS user.'
  static override description = 'Admin only; audited. Exit code 3: no such extension.'
  static override examples = ['<%= config.bin %> ext remove webhook', '<%= config.bin %> ext remove webhook --json']
  static override args = { name: Args.string({ required: true, description: 'Extension name.' }) }

  async run(): Promise<ExtRemoveResult> {
    const { args } = await this.parse(ExtRemove)
    const r = await this.kernel().call(extRemove, { name: args.name })
    this.log(`Removed ${r.name} (files, state, OS user).`)
    return r
  }
}
