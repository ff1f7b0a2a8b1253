import { Flags } from '@oclif/core'
import { promises as fsp } from 'node:fs'
import { watch } from 'node:fs/promises'
import { MagflockCommand } from '../../cli/base-command.js'

export type KernelLogsResult = { file: string; lines: string[] }

export default class KernelLogs extends MagflockCommand<KernelLogsResult> {
  static override summary = 'Print the kernel log (JSON lines, <state>/kernel.log).'
  static override examples = ['<%= config.bin %> kernel logs', '<%= config.bin %> kernel logs -n 500 --json', '<%= config.bin %> kernel logs --follow']
  static override flags = {
    lines: Flags.integer({ char: 'n', summary: 'How many of the last lines.', default: 100, min: 1 }),
    follow: Flags.boolean({ char: 'f', summary: 'Keep printing new lines.', default: false }),
  }

  async run(): Promise<KernelLogsResult> {
    const { flags } = await this.parse(KernelLogs)
    const file = this.layout().kernelLog
    const text = await fsp.readFile(file, 'utf8').catch(() => '')
    const lines = text.split('\n').filter(Boolean).slice(-flags.lines)
    for (const l of lines) this.log(l)
    if (flags.follow && !this.jsonEnabled()) {
      let offset = Buffer.byteLength(text)
      for await (const _ of watch(file)) {
        const fh = await fsp.open(file, 'r')
        const { size } = await fh.stat()
        if (size < offset) offset = 0
        const buf = Buffer.alloc(size - offset)
        await fh.read(buf, 0, buf.length, offset)
        await fh.close()
        offset = size
        process.stdout.write(buf.toString('utf8'))
      }
    }
    return { file, lines }
  }
}
