import { MagflockCommand } from '../../cli/base-command.js'
import { serviceStatus, type StatusResult } from '../../service/install.js'
import { serviceFlags } from '../../service/flags.js'

export default class ServiceStatus extends MagflockCommand<StatusResult> {
  static override summary = 'Show whether the kernel\'s systemd unit is installed, enabled and active.'
  static override examples = ['<%= config.bin %> service status', '<%= config.bin %> service status --json']
  static override flags = { ...serviceFlags }

  async run(): Promise<StatusResult> {
    const { flags } = await this.parse(ServiceStatus)
    const r = await serviceStatus({ layout: this.layout(), projectDir: process.cwd(), name: flags.name, unitDir: flags['unit-dir'] })
    this.log(`${r.name}.service: ${r.installed ? `installed (${r.unitFile})` : 'not installed'}`)
    if (r.systemctl.run) this.log(`systemd: ${r.active ?? 'unknown'}, ${r.enabled ?? 'unknown'}`)
    else this.log(`systemd: not asked (${r.systemctl.reason})`)
    return r
  }
}
