import { MagflockCommand } from '../../cli/base-command.js'
import { kernelLiveness } from '../../kernel/state.js'
import { socketAnswers } from '../../kernel/launcher.js'
import { KERNEL_NOT_RUNNING } from '../../client/errors.js'

export type KernelStatusResult = { running: boolean; pid: number | null; socket: string; answering: boolean; version: string | null; startedAt: string | null; env: string | null; stale: string | null }

export default class KernelStatus extends MagflockCommand<KernelStatusResult> {
  static override summary = 'Say whether the kernel runs for this state directory (exit 7 when it does not).'
  static override examples = ['<%= config.bin %> kernel status', '<%= config.bin %> kernel status --json']

  async run(): Promise<KernelStatusResult> {
    await this.parse(KernelStatus)
    const layout = this.layout()
    const live = await kernelLiveness(layout)
    if (live.state !== 'running') {
      throw KERNEL_NOT_RUNNING({ stateDir: layout.root, reason: live.state === 'stale' ? `stale kernel.json: ${live.reason}` : 'no kernel.json' })
    }
    const answering = await socketAnswers(live.info.socket)
    const r = { running: true, pid: live.info.pid, socket: live.info.socket, answering, version: live.info.version, startedAt: live.info.startedAt, env: live.info.env, stale: null }
    this.log(`Kernel pid ${r.pid} (v${r.version}, env ${r.env}) since ${r.startedAt}; socket ${r.socket} ${answering ? 'answers' : 'DOES NOT answer'}.`)
    return r
  }
}
