import { Args } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { getConfigValue } from '../../config/edit.js'
import { envFlag, effectiveEnv } from '../../config/flags.js'
import { loadConfig, renderSource, type ConfigSource } from '../../config/load.js'
import { configForDisplay, maskValue, renderYaml } from '../../config/show.js'

export type ConfigGetResult = { key: string; value: unknown; source: ConfigSource; where: string }

export default class ConfigGet extends MagflockCommand<ConfigGetResult> {
  static override summary = 'Print the effective value of one key (or a whole section).'
  static override examples = ['<%= config.bin %> config get postgres.port', '<%= config.bin %> config get kernel --env production --json']
  static override args = { key: Args.string({ required: true, description: 'Dotted key, e.g. postgres.port.' }) }
  static override flags = { env: envFlag }

  async run(): Promise<ConfigGetResult> {
    const { args, flags } = await this.parse(ConfigGet)
    const cwd = process.cwd()
    const loaded = await loadConfig({ cwd, env: effectiveEnv(flags.env) })
    const raw = getConfigValue(loaded.config, args.key)
    const value = raw !== null && typeof raw === 'object' ? getConfigValue(configForDisplay(loaded.config), args.key) : maskValue(args.key, raw)
    const source = loaded.sourceOf(args.key)
    this.log(value === null ? '(unset)' : typeof value === 'object' ? renderYaml(value) : String(value))
    return { key: args.key, value, source, where: renderSource(source, cwd) }
  }
}
