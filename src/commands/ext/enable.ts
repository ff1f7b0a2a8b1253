import { Args } from '@oclif/core'
import { extEnable, type ExtInfo } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtEnableResult = ExtInfo

export default class ExtEnable extends MagflockCommand<ExtEnableResult> {
  static override summary = 'Start an extension and keep it running (restarted on failure, given up after 3 restarts a minute).'
  static override description = 'Admin only; audited. Exit codes: 3 no such extension, 5 the kernel cannot isolate extensions (not root).'
  static override examples = ['<%= config.bin %> ext enable webhook', '<%= config.bin %> ext enable webhook --json']
  static override args = { name: Args.string({ required: true, description: 'Extension name.' }) }

  async run(): Promise<ExtEnableResult> {
    const { args } = await this.parse(ExtEnable)
    const r = await this.kernel().call(extEnable, { name: args.name })
    this.log(`${r.name}: ${r.detail}`)
    return r
  }
}
