import { Args } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { tokenRevoke } from '../../api/core.js'
import type { RouteOutput } from '../../api/route.js'

/** The `--json` result: the route's response, as its contract (tokenRevoke) defines it. */
export type TokenRevokeResult = RouteOutput<typeof tokenRevoke>

export default class TokenRevoke extends MagflockCommand<TokenRevokeResult> {
  static override summary = 'Revoke a control API token by id; it stops working at once.'
  static override examples = ['<%= config.bin %> token revoke 3f9a1c2b']
  static override args = { id: Args.string({ required: true, description: 'Token id from `magflock token list`.' }) }

  async run(): Promise<TokenRevokeResult> {
    const { args } = await this.parse(TokenRevoke)
    const r = await this.kernel().call(tokenRevoke, { id: args.id })
    this.log(`Revoked ${r.revoked}.`)
    return r
  }
}
