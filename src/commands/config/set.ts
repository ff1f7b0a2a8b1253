import path from 'node:path'
import { Args } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { setConfigValue, type SetResult } from '../../config/edit.js'
import { envFlag } from '../../config/flags.js'

export default class ConfigSet extends MagflockCommand<SetResult> {
  static override summary = 'Set a key in magflock.yaml (or magflock.<env>.yaml with --env), keeping comments.'
  static override description =
    'The value is converted to the key\'s type and the whole layered config is validated before the file is written; ' +
    'an invalid value changes nothing. A running kernel picks the change up with `magflock config reload`. ' +
    'For secrets, store the value with `magflock secrets set NAME` and set the key to secret:NAME.'
  static override examples = [
    '<%= config.bin %> config set postgres.port 5544',
    '<%= config.bin %> config set kernel.logLevel debug --env production',
    '<%= config.bin %> config set backup.encryptionKey secret:backup-kek',
    '<%= config.bin %> config set postgres.settings.work_mem 16MB',
  ]
  static override args = {
    key: Args.string({ required: true, description: 'Dotted key, e.g. postgres.port.' }),
    value: Args.string({ required: true, description: 'New value (converted to the key\'s type).' }),
  }
  static override flags = { env: envFlag }

  async run(): Promise<SetResult> {
    const { args, flags } = await this.parse(ConfigSet)
    const r = await setConfigValue({ cwd: process.cwd(), key: args.key, value: args.value, env: flags.env })
    this.log(`${args.key} = ${typeof r.value === 'string' ? r.value : JSON.stringify(r.value)} in ${path.relative(process.cwd(), r.file)}${r.created ? ' (created)' : ''}`)
    this.log('A running kernel applies it with `magflock config reload`.')
    return r
  }
}
