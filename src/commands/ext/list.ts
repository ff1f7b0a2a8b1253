import { extList, type ExtInfo } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtListResult = { extensions: ExtInfo[] }

export default class ExtList extends MagflockCommand<ExtListResult> {
  static override summary = 'List installed extensions: state, requested capabilities and grants.'
  static override examples = ['<%= config.bin %> ext list', '<%= config.bin %> ext list --json']

  async run(): Promise<ExtListResult> {
    const r = await this.kernel().call(extList, {})
    if (r.extensions.length === 0) this.log('No extensions installed. Install one with `magflock ext install PATH`.')
    for (const e of r.extensions) {
      this.log(`${e.name} ${e.version}  ${e.enabled ? 'enabled' : 'disabled'}  ${e.state}${e.pid ? ` pid ${e.pid}` : ''}  restarts ${e.restarts}  — ${e.detail}`)
      this.log(`  requested: ${e.requested.join(', ') || '-'}`)
      this.log(`  granted:   ${e.grants.join(', ') || '-'}`)
    }
    return r
  }
}
