import { Args } from '@oclif/core'
import { extRevoke, type ExtInfo } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtRevokeResult = ExtInfo

export default class ExtRevoke extends MagflockCommand<ExtRevokeResult> {
  static override summary = 'Take back one capability (takes effect on its next call; db:connect also revokes the SQL rights).'
  static override description =
    'Capabilities: events:subscribe:<pattern>, api:call:<routeId>, db:connect:<database>:ro|rw, config:read, state:dir, hooks:<point>:observe|veto (docs/extensions.md). ' +
    'Admin only; audited. Exit codes: 2 not a capability, 3 no such extension or grant, 5 not requested by the manifest.'
  static override examples = ['<%= config.bin %> ext revoke webhook events:subscribe:backup.failed', '<%= config.bin %> ext revoke reporter db:connect:app:ro --json']
  static override args = {
    name: Args.string({ required: true, description: 'Extension name.' }),
    capability: Args.string({ required: true, description: 'The capability string.' }),
  }

  async run(): Promise<ExtRevokeResult> {
    const { args } = await this.parse(ExtRevoke)
    const r = await this.kernel().call(extRevoke, { name: args.name, capability: args.capability })
    this.log(`${r.name} grants: ${r.grants.join(', ') || 'none'}`)
    return r
  }
}
