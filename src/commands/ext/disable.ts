import { Args } from '@oclif/core'
import { extDisable, type ExtInfo } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtDisableResult = ExtInfo

export default class ExtDisable extends MagflockCommand<ExtDisableResult> {
  static override summary = 'Stop an extension and keep it stopped (its files and grants stay).'
  static override description = 'Admin only; audited. Exit codes: 3 no such extension, 5 the kernel cannot isolate extensions (not root).'
  static override examples = ['<%= config.bin %> ext disable webhook', '<%= config.bin %> ext disable webhook --json']
  static override args = { name: Args.string({ required: true, description: 'Extension name.' }) }

  async run(): Promise<ExtDisableResult> {
    const { args } = await this.parse(ExtDisable)
    const r = await this.kernel().call(extDisable, { name: args.name })
    this.log(`${r.name}: ${r.detail}`)
    return r
  }
}
