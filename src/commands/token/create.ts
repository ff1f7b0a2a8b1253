import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { tokenCreate } from '../../api/core.js'
import { ROLES, type RouteOutput } from '../../api/route.js'

/** The `--json` result: the route's response, as its contract (tokenCreate) defines it. */
export type TokenCreateResult = RouteOutput<typeof tokenCreate>

export default class TokenCreate extends MagflockCommand<TokenCreateResult> {
  static override summary = 'Create a control API token with a role (the secret is shown once).'
  static override description =
    'Roles: admin (everything), operator (operate the flock, no token management), viewer (read-only), ci (migrate, backup, status). ' +
    'Only a hash is stored; keep the printed token in your CI secret store.'
  static override examples = ['<%= config.bin %> token create --role ci --name github-actions', '<%= config.bin %> token create --role viewer --name grafana --json']
  static override flags = {
    role: Flags.string({ summary: 'Role of the token.', options: [...ROLES], required: true }),
    name: Flags.string({ summary: 'A label to recognise it by (letters, digits, . _ -).', required: true }),
  }

  async run(): Promise<TokenCreateResult> {
    const { flags } = await this.parse(TokenCreate)
    const t = await this.kernel().call(tokenCreate, { role: flags.role as (typeof ROLES)[number], name: flags.name })
    this.log(`Token ${t.id} (${t.role}, "${t.name}"). Shown once:\n${t.token}`)
    return t
  }
}
