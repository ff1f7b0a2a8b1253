import { MagflockCommand } from '../cli/base-command.js'
import { effectiveEnv, envFlag } from '../config/flags.js'
import { loadConfig } from '../config/load.js'
import { runChecks, type Check } from '../doctor/checks.js'
import { defineError } from '../errors/index.js'

export type DoctorResult = { ok: boolean; checks: Check[] }

const DOCTOR_FAILED = defineError<{ failed: string[] }>({
  code: 'E_DOCTOR_FAILED',
  class: 'failed_precondition',
  area: 'doctor',
  message: (a) => `${a.failed.length} check(s) failed: ${a.failed.join(', ')}.`,
  hint: () => 'Each failed check above has its own hint; `--json` lists them in error.details.checks.',
})

export default class Doctor extends MagflockCommand<DoctorResult> {
  static override summary = 'Check this machine for MagFlock: Node, Postgres binaries, OS user, ports, secrets store, permissions.'
  static override description = 'Changes nothing. Exit 0 when every check passes (warnings allowed), 5 when one fails.'
  static override examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json']
  static override flags = { env: envFlag }

  async run(): Promise<DoctorResult> {
    const { flags } = await this.parse(Doctor)
    const { config } = await loadConfig({ cwd: process.cwd(), env: effectiveEnv(flags.env), environ: process.env })
    const checks = await runChecks(this.layout(), config)
    for (const c of checks) {
      const mark = c.status === 'ok' ? 'ok  ' : c.status === 'warn' ? 'warn' : 'FAIL'
      this.log(`${mark}  ${c.name.padEnd(20)} ${c.detail}`)
      if (c.hint && c.status !== 'ok') this.log(`      ${''.padEnd(20)} hint: ${c.hint}`)
    }
    const failed = checks.filter((c) => c.status === 'fail').map((c) => c.name)
    if (failed.length) throw DOCTOR_FAILED({ failed }, { details: { checks } })
    return { ok: true, checks }
  }
}
