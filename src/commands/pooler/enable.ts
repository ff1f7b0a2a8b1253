import path from 'node:path'
import { MagflockCommand } from '../../cli/base-command.js'
import { setConfigValue, type SetResult } from '../../config/edit.js'
import { envFlag } from '../../config/flags.js'

export default class PoolerEnable extends MagflockCommand<SetResult> {
  static override summary = 'Turn the managed PgBouncer on (sets pooler.enabled: true in magflock.yaml).'
  static override description = 'The same as `magflock config set pooler.enabled true`; the kernel applies it at its next start (`magflock kernel stop && magflock kernel start`). See docs/pooling.md.'
  static override examples = ['<%= config.bin %> pooler enable', '<%= config.bin %> pooler enable --env production --json']
  static override flags = { env: envFlag }

  async run(): Promise<SetResult> {
    const { flags } = await this.parse(PoolerEnable)
    const r = await setConfigValue({ cwd: process.cwd(), key: 'pooler.enabled', value: 'true', env: flags.env })
    this.log(`pooler.enabled = true in ${path.relative(process.cwd(), r.file)}. Restart the kernel to apply it: magflock kernel stop && magflock kernel start`)
    return r
  }
}
