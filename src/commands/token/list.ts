import { MagflockCommand } from '../../cli/base-command.js'
import { tokenList } from '../../api/core.js'
import type { RouteOutput } from '../../api/route.js'

/** The `--json` result: the route's response, as its contract (tokenList) defines it. */
export type TokenListResult = RouteOutput<typeof tokenList>

export default class TokenList extends MagflockCommand<TokenListResult> {
  static override summary = 'List control API tokens (never their secrets).'
  static override examples = ['<%= config.bin %> token list', '<%= config.bin %> token list --json']

  async run(): Promise<TokenListResult> {
    await this.parse(TokenList)
    const r = await this.kernel().call(tokenList, {})
    for (const t of r.tokens) this.log(`${t.id}  ${t.role.padEnd(8)}  ${t.name}  ${t.createdAt}`)
    return r
  }
}
