import { Flags } from '@oclif/core'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MagflockCommand } from '../cli/base-command.js'
import { defineError } from '../errors/index.js'
import { writeFileAtomic, exists } from '../platform/fs.js'

export type InitResult = { file: string; overwritten: boolean }

const CONFIG_EXISTS = defineError<{ file: string }>({
  code: 'E_CONFIG_EXISTS',
  class: 'already_exists',
  area: 'config',
  message: (a) => `${a.file} already exists; not overwriting it.`,
  hint: () => 'Edit it, use `magflock config set KEY VALUE`, or re-run with --force to replace it with the template.',
})

const TEMPLATE = fileURLToPath(new URL('../../templates/magflock.yaml', import.meta.url))

export default class Init extends MagflockCommand<InitResult> {
  static override summary = 'Write a commented magflock.yaml from the template into the current directory.'
  static override examples = ['<%= config.bin %> init', '<%= config.bin %> init --force']
  static override flags = { force: Flags.boolean({ summary: 'Replace an existing magflock.yaml.', default: false }) }

  async run(): Promise<InitResult> {
    const { flags } = await this.parse(Init)
    const file = path.resolve('magflock.yaml')
    const had = await exists(file)
    if (had && !flags.force) throw CONFIG_EXISTS({ file })
    await writeFileAtomic(file, await fsp.readFile(TEMPLATE, 'utf8'), { mode: 0o644 })
    this.log(`Wrote ${file}. Next: \`magflock up\`.`)
    return { file, overwritten: had }
  }
}
