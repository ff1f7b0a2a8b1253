import { Args, Flags } from '@oclif/core'
import type { z } from 'zod'
import { instanceRemove } from '../../api/core.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type InstanceRemoveResult = z.infer<typeof instanceRemove.output>

export default class InstanceRemove extends MagflockCommand<InstanceRemoveResult> {
  static override summary = 'Remove a standalone instance (a restored copy): stop it and delete its directory.'
  static override description =
    'Only standalone instances (made by `backup restore --to-instance`) can be removed this way; the primary never, replicas with `replica remove`. ' +
    'With --keep-data the instance is stopped and forgotten but its directory stays on disk.'
  static override examples = ['<%= config.bin %> instance remove before-bug', '<%= config.bin %> instance remove before-bug --keep-data']
  static override args = { name: Args.string({ description: 'Instance name (see `magflock status`).', required: true }) }
  static override flags = {
    'keep-data': Flags.boolean({ summary: 'Keep its data directory on disk.', default: false }),
  }

  async run(): Promise<InstanceRemoveResult> {
    const { args, flags } = await this.parse(InstanceRemove)
    const r = await this.kernel().call(instanceRemove, { name: args.name, keepData: flags['keep-data'] })
    this.log(r.dataKept ? `${r.name} stopped and removed from the flock; its data stays in ${r.dataDir}.` : `${r.name} stopped; its data directory was deleted.`)
    return r
  }
}
