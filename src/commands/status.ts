import { Flags } from '@oclif/core'
import { MagflockCommand } from '../cli/base-command.js'
import { renderStatus } from '../cli/render.js'
import type { StatusOutput } from '../api/core.js'
import { statusRoute } from '../api/lazy.js'

export default class Status extends MagflockCommand<StatusOutput> {
  static override summary = 'Show the kernel, its components and every instance of the flock.'
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json', '<%= config.bin %> status --watch']
  static override flags = {
    watch: Flags.boolean({ summary: 'Keep a live view open (refreshes every second; q or Ctrl-C quits).', default: false }),
    interval: Flags.integer({ summary: 'Refresh interval for --watch, in milliseconds.', default: 1000, min: 200 }),
  }

  async run(): Promise<StatusOutput> {
    const { flags } = await this.parse(Status)
    const client = this.kernel()
    const s = await client.call(statusRoute, {})
    if (flags.watch && !this.jsonEnabled()) {
      // ink and React take longer to load than the status call (seconds on a busy machine):
      // a terminal gets the first frame as plain text at once, and the live view, once
      // loaded, replaces it.
      const tty = Boolean(process.stdout.isTTY && process.stdin.isTTY)
      if (tty) process.stdout.write(`${CLEAR_SCREEN}${renderStatus(s)}\n`)
      const { watchStatus } = await import('../ui/status-view.js')
      await watchStatus(() => client.call(statusRoute, {}), flags.interval, s, { clearFirst: tty })
      return s
    }
    this.log(renderStatus(s))
    return s
  }
}

/** Erase the screen and move the cursor home (ANSI). */
const CLEAR_SCREEN = '\u001B[2J\u001B[H'
