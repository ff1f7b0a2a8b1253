import { Args } from '@oclif/core'
import { extGrant, type ExtInfo } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtGrantResult = ExtInfo

export default class ExtGrant extends MagflockCommand<ExtGrantResult> {
  static override summary = 'Approve one capability the extension requests (takes effect on its next call).'
  static override description =
    'Capabilities: events:subscribe:<pattern>, api:call:<routeId>, db:connect:<database>:ro|rw, config:read, state:dir, hooks:<point>:observe|veto (docs/extensions.md). ' +
    'Admin only; audited. Exit codes: 2 not a capability, 3 no such extension or grant, 5 not requested by the manifest.'
  static override examples = ['<%= config.bin %> ext grant webhook events:subscribe:backup.failed', '<%= config.bin %> ext grant reporter db:connect:app:ro --json']
  static override args = {
    name: Args.string({ required: true, description: 'Extension name.' }),
    capability: Args.string({ required: true, description: 'The capability string.' }),
  }

  async run(): Promise<ExtGrantResult> {
    const { args } = await this.parse(ExtGrant)
    const r = await this.kernel().call(extGrant, { name: args.name, capability: args.capability })
    this.log(`${r.name} grants: ${r.grants.join(', ') || 'none'}`)
    return r
  }
}
