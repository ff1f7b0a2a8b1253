import { MagflockCommand } from '../cli/base-command.js'
import { shutdown } from '../api/core.js'
import { kernelLiveness } from '../kernel/state.js'
import { waitForKernelExit } from '../kernel/launcher.js'
import { stopOrphanInstances } from '../daemon/orphans.js'

export type DownResult = { kernelStopped: boolean; instancesStopped: string[] }

export default class Down extends MagflockCommand<DownResult> {
  static override summary = 'Stop the flock: every Postgres instance (fast shutdown) and the kernel.'
  static override description =
    'Also stops instances left running by a kernel that died (kill -9), found through their postmaster.pid. ' +
    'Data is kept; `magflock up` starts it again. To stop only the kernel and keep Postgres serving, use `magflock kernel stop`.'
  static override examples = ['<%= config.bin %> down', '<%= config.bin %> down --json']

  async run(): Promise<DownResult> {
    await this.parse(Down)
    const layout = this.layout()
    const live = await kernelLiveness(layout)
    let kernelStopped = false
    if (live.state === 'running') {
      await this.kernel().call(shutdown, { keepPostgres: false })
      await waitForKernelExit(live.info)
      kernelStopped = true
    }
    const instancesStopped = await stopOrphanInstances(layout)
    this.log(kernelStopped || instancesStopped.length ? 'The flock is down.' : 'Nothing was running.')
    return { kernelStopped, instancesStopped }
  }
}
