import { MagflockCommand } from '../../cli/base-command.js'
import { shutdown } from '../../api/core.js'
import { kernelLiveness } from '../../kernel/state.js'
import { waitForKernelExit } from '../../kernel/launcher.js'

export type KernelStopResult = { stopped: boolean; pid: number | null }

export default class KernelStop extends MagflockCommand<KernelStopResult> {
  static override summary = 'Stop the kernel daemon; Postgres keeps serving and the next kernel re-adopts it.'
  static override examples = ['<%= config.bin %> kernel stop', '<%= config.bin %> down   # to stop Postgres too']

  async run(): Promise<KernelStopResult> {
    await this.parse(KernelStop)
    const live = await kernelLiveness(this.layout())
    if (live.state !== 'running') {
      this.log('The kernel is not running.')
      return { stopped: false, pid: null }
    }
    await this.kernel().call(shutdown, { keepPostgres: true })
    await waitForKernelExit(live.info)
    this.log(`Kernel (pid ${live.info.pid}) stopped; Postgres is still serving.`)
    return { stopped: true, pid: live.info.pid }
  }
}
