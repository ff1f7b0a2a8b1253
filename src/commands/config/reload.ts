import { MagflockCommand } from '../../cli/base-command.js'
import { configReload, type ConfigReloadResult } from '../../api/config.js'

export default class ConfigReload extends MagflockCommand<ConfigReloadResult> {
  static override summary = 'Make the running kernel re-read its config: live settings apply now, others are listed as needing a restart.'
  static override description = 'Same as sending SIGHUP to the kernel. An invalid config is refused and the running one stays in force.'
  static override examples = ['<%= config.bin %> config reload', '<%= config.bin %> config reload --json']

  async run(): Promise<ConfigReloadResult> {
    await this.parse(ConfigReload)
    const r = await this.kernel().call(configReload, {})
    this.log(r.applied.length ? `Applied live (env ${r.env}): ${r.applied.join(', ')}` : `No live changes (env ${r.env}).`)
    if (r.restartRequired.length) this.log(`Need a restart to apply: ${r.restartRequired.join(', ')} (magflock kernel stop, then magflock up).`)
    return r
  }
}
