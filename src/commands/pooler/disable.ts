import path from 'node:path'
import { MagflockCommand } from '../../cli/base-command.js'
import { setConfigValue, type SetResult } from '../../config/edit.js'
import { envFlag } from '../../config/flags.js'

export default class PoolerDisable extends MagflockCommand<SetResult> {
  static override summary = 'Turn the managed PgBouncer off (sets pooler.enabled: false in magflock.yaml).'
  static override description = 'The same as `magflock config set pooler.enabled false`; the kernel applies it at its next start (`magflock kernel stop && magflock kernel start`). See docs/pooling.md.'
  static override examples = ['<%= config.bin %> pooler disable', '<%= config.bin %> pooler disable --env production --json']
  static override flags = { env: envFlag }

  async run(): Promise<SetResult> {
    const { flags } = await this.parse(PoolerDisable)
    const r = await setConfigValue({ cwd: process.cwd(), key: 'pooler.enabled', value: 'false', env: flags.env })
    this.log(`pooler.enabled = false in ${path.relative(process.cwd(), r.file)}. Restart the kernel to apply it: magflock kernel stop && magflock kernel start`)
    return r
  }
}
