import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { effectiveEnv, envFlag } from '../../config/flags.js'
import { installService, type InstallResult } from '../../service/install.js'
import { serviceFlags } from '../../service/flags.js'

export default class ServiceInstall extends MagflockCommand<InstallResult> {
  static override summary = 'Install a systemd unit that keeps the kernel running (restarts it after a crash or reboot).'
  static override description =
    'Writes <name>.service (Restart=always, User=, the kernel in the foreground for this project and state dir) to ' +
    '/etc/systemd/system or --unit-dir, and an EnvironmentFile (mode 0600) in the state dir holding MAGFLOCK_MASTER_KEY ' +
    'when it is set: the unit itself carries no secret. With systemd as the running init it then runs ' +
    '`systemctl daemon-reload` and `systemctl enable`; start it with `systemctl start <name>` after `magflock down`. ' +
    '--dry-run prints the unit and writes nothing. launchd (macOS) is not supported. Exit codes: 0 installed, 2 bad input, ' +
    '4 a unit of that name not written by magflock exists.'
  static override examples = [
    '<%= config.bin %> service install --dry-run',
    'sudo <%= config.bin %> service install --env production',
    '<%= config.bin %> service install --unit-dir ./units --json',
  ]
  static override flags = {
    ...serviceFlags,
    user: Flags.string({ summary: 'OS user the kernel runs as (default: the state dir\'s owner, else you).' }),
    env: envFlag,
    'dry-run': Flags.boolean({ summary: 'Print the unit; write nothing.', default: false }),
  }

  async run(): Promise<InstallResult> {
    const { flags } = await this.parse(ServiceInstall)
    // The env is fixed in the unit: systemd has no MAGFLOCK_ENV and not your preferences.
    const env = effectiveEnv(flags.env)
    const r = await installService({
      layout: this.layout(),
      projectDir: process.cwd(),
      name: flags.name,
      unitDir: flags['unit-dir'],
      user: flags.user,
      env,
      dryRun: flags['dry-run'],
    })
    if (r.dryRun) {
      this.log(`# ${r.unitFile} (not written: --dry-run)`)
      this.log(r.unit)
      return r
    }
    this.log(`Wrote ${r.unitFile} and ${r.envFile} (0600${r.masterKeyInEnvFile ? ', holds MAGFLOCK_MASTER_KEY' : ''}).`)
    if (r.enabled) this.log(`Enabled ${r.name}.service. Start it with \`systemctl start ${r.name}\` (after \`magflock down\` if a kernel runs now).`)
    else this.log(`systemctl not run: ${r.systemctl.reason}.`)
    return r
  }
}
