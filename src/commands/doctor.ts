import { MagflockCommand } from '../cli/base-command.js'
import { effectiveEnv, envFlag } from '../config/flags.js'
import { loadConfig } from '../config/load.js'
import { Flags } from '@oclif/core'
import { runChecks, type Check } from '../doctor/checks.js'
import { repairTopology, type RepairResult } from '../doctor/repair.js'
import { defineError } from '../errors/index.js'

/** `repair` only with --repair (then `checks` is empty: a serving Postgres fails the port checks). */
export type DoctorResult = { ok: boolean; checks: Check[]; repair?: RepairResult }

const DOCTOR_FAILED = defineError<{ failed: string[] }>({
  code: 'E_DOCTOR_FAILED',
  class: 'failed_precondition',
  area: 'doctor',
  message: (a) => `${a.failed.length} check(s) failed: ${a.failed.join(', ')}.`,
  hint: () => 'Each failed check above has its own hint; `--json` lists them in error.details.checks.',
})

export default class Doctor extends MagflockCommand<DoctorResult> {
  static override summary = 'Check this machine for MagFlock: Node, Postgres binaries, OS user, ports, secrets store, permissions.'
  static override description =
    'Changes nothing. Exit 0 when every check passes (warnings allowed), 5 when one fails. ' +
    'With --repair (kernel stopped), rebuilds a corrupt, missing or incomplete topology.json from the instance directories and running postmasters ' +
    '(fence marker → fenced, standby.signal → replica, the instance the replicas follow → primary, any other → standalone) and changes nothing else.'
  static override examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json', '<%= config.bin %> doctor --repair --json']
  static override flags = {
    env: envFlag,
    repair: Flags.boolean({ summary: 'Rebuild topology.json from what is on disk and running (the kernel must be stopped).', default: false }),
    'dry-run': Flags.boolean({ summary: 'With --repair: say what would change, write nothing.', default: false, dependsOn: ['repair'] }),
  }

  async run(): Promise<DoctorResult> {
    const { flags } = await this.parse(Doctor)
    if (flags.repair) {
      const repair = await repairTopology(this.layout(), { dryRun: flags['dry-run'] })
      this.log(`topology.json was ${repair.before}; ${repair.changes.length === 0 ? 'nothing to repair' : repair.repaired ? 'rebuilt' : 'would be rebuilt (dry run)'}:`)
      for (const c of repair.changes) this.log(`  ${c}`)
      for (const s of repair.skipped) this.log(`  skipped ${s.name}: ${s.why}`)
      if (repair.movedAside) this.log(`The unreadable file is kept as ${repair.movedAside}.`)
      if (repair.repaired) this.log('Start the kernel with `magflock up`.')
      return { ok: true, checks: [], repair }
    }
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
