import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { uninstallService, type UninstallResult } from '../../service/install.js'
import { serviceFlags } from '../../service/flags.js'

export default class ServiceUninstall extends MagflockCommand<UninstallResult> {
  static override summary = 'Remove the systemd unit of the kernel (stopping it first) and its environment file.'
  static override description =
    'With systemd as the running init: `systemctl disable --now` (the kernel stops Postgres, fast shutdown), then the files go. ' +
    'Idempotent: nothing installed is not an error. Refuses (exit 4) to remove a unit file magflock did not write.'
  static override examples = ['<%= config.bin %> service uninstall', '<%= config.bin %> service uninstall --unit-dir ./units --json']
  static override flags = {
    ...serviceFlags,
    'dry-run': Flags.boolean({ summary: 'List what would be removed; change nothing.', default: false }),
  }

  async run(): Promise<UninstallResult> {
    const { flags } = await this.parse(ServiceUninstall)
    const r = await uninstallService({ layout: this.layout(), projectDir: process.cwd(), name: flags.name, unitDir: flags['unit-dir'], dryRun: flags['dry-run'] })
    if (r.removed.length === 0) this.log(`${r.name}.service is not installed; nothing to remove.`)
    else this.log(`${r.dryRun ? 'Would remove' : 'Removed'}: ${r.removed.join(', ')}${r.disabled ? ` (stopped and disabled ${r.name}.service)` : ''}`)
    return r
  }
}
