import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { envFlag, effectiveEnv } from '../../config/flags.js'
import { loadConfig } from '../../config/load.js'
import { configForDisplay, explainForDisplay, parseSetFlags, renderExplain, renderYaml, type ShownEntry } from '../../config/show.js'

export type ConfigShowResult = { env: string; files: string[]; config: unknown; entries?: ShownEntry[] }

export default class ConfigShow extends MagflockCommand<ConfigShowResult> {
  static override summary = 'Print the effective configuration (all layers merged).'
  static override description =
    'Layers, lowest first: defaults, magflock.yaml, magflock.<env>.yaml, MAGFLOCK_* variables, --set flags. ' +
    'Secret references print as secret:NAME; they are resolved only inside the kernel.'
  static override examples = [
    '<%= config.bin %> config show',
    '<%= config.bin %> config show --env production --explain',
    '<%= config.bin %> config show --json',
  ]
  static override flags = {
    env: envFlag,
    explain: Flags.boolean({ summary: 'Show where each value comes from (file:line, variable, flag or default).' }),
    set: Flags.string({ summary: 'Override a key for this command, KEY=VALUE (repeatable).', multiple: true }),
  }

  async run(): Promise<ConfigShowResult> {
    const { flags } = await this.parse(ConfigShow)
    const cwd = process.cwd()
    const loaded = await loadConfig({ cwd, env: effectiveEnv(flags.env), flags: parseSetFlags(flags.set) })
    const result: ConfigShowResult = { env: loaded.env, files: loaded.files, config: configForDisplay(loaded.config) }
    if (flags.explain) {
      result.entries = explainForDisplay(loaded, cwd)
      this.log(`# env: ${loaded.env}; files: ${loaded.files.length ? loaded.files.join(', ') : 'none (defaults)'}`)
      this.log(renderExplain(result.entries))
    } else {
      this.log(`# env: ${loaded.env}`)
      this.log(renderYaml(result.config))
    }
    return result
  }
}
