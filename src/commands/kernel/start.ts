import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { effectiveEnv, envFlag } from '../../config/flags.js'
import { ensureKernel } from '../../kernel/launcher.js'

export type KernelStartResult = { pid: number; launched: boolean; foreground: boolean }

export default class KernelStart extends MagflockCommand<KernelStartResult> {
  static override summary = 'Start the kernel daemon (detached unless --foreground).'
  static override description =
    'In the foreground the kernel logs to the terminal too and stops on Ctrl-C/SIGTERM (Postgres included); SIGHUP reloads config.'
  static override examples = ['<%= config.bin %> kernel start', '<%= config.bin %> kernel start --foreground --env production']
  static override flags = {
    foreground: Flags.boolean({ summary: 'Run in this terminal instead of detaching.', default: false }),
    env: envFlag,
  }

  async run(): Promise<KernelStartResult> {
    const { flags } = await this.parse(KernelStart)
    const layout = this.layout()
    if (flags.foreground) {
      const { runForeground } = await import('../../daemon/main.js')
      await runForeground({ stateDir: layout.root, projectDir: process.cwd(), env: effectiveEnv(flags.env), foreground: !this.jsonEnabled() })
      return { pid: process.pid, launched: true, foreground: true }
    }
    const r = await ensureKernel(layout, { projectDir: process.cwd(), env: effectiveEnv(flags.env) })
    this.log(r.launched ? `Kernel started (pid ${r.pid}).` : `Kernel already running (pid ${r.pid}).`)
    return { pid: r.pid, launched: r.launched, foreground: false }
  }
}
