import { Args, Flags } from '@oclif/core'
import { createInterface } from 'node:readline/promises'
import { dbDrop, type DbDropResult } from '../../api/db.js'
import { MagflockCommand } from '../../cli/base-command.js'
import { DB_CONFIRMATION_REQUIRED, DB_DROP_CANCELLED } from '../../databases/errors.js'

export default class DbDrop extends MagflockCommand<DbDropResult> {
  static override summary = 'Drop a database (asks for confirmation; --force for scripts).'
  static override description =
    'Refuses while a migration or backup of the database runs, and while clients are connected (unless --disconnect). ' +
    'The owner role MagFlock created is dropped with it when it owns nothing else, and its vault secret deleted.'
  static override examples = ['<%= config.bin %> db drop app', '<%= config.bin %> db drop app --force --json', '<%= config.bin %> db drop app --force --disconnect']
  static override args = { name: Args.string({ required: true, description: 'Database name.' }) }
  static override flags = {
    force: Flags.boolean({ summary: 'Do not ask for confirmation.', default: false }),
    disconnect: Flags.boolean({ summary: 'Terminate open sessions instead of refusing.', default: false }),
    'keep-role': Flags.boolean({ summary: 'Keep the owner role and its vault secret.', default: false }),
  }

  async run(): Promise<DbDropResult> {
    const { args, flags } = await this.parse(DbDrop)
    if (!flags.force) {
      if (this.jsonEnabled() || !process.stdin.isTTY) throw DB_CONFIRMATION_REQUIRED({ name: args.name })
      const rl = createInterface({ input: process.stdin, output: process.stderr })
      const answer = await rl.question(`This deletes database "${args.name}" and all its data. Type its name to confirm: `)
      rl.close()
      if (answer.trim() !== args.name) throw DB_DROP_CANCELLED({ name: args.name })
    }
    const res = await this.kernel().call(dbDrop, { name: args.name, disconnect: flags.disconnect, keepRole: flags['keep-role'] })
    this.log(`Dropped database ${res.name}${res.roleDropped ? ` and role ${res.owner}` : ''}.`)
    return res
  }
}
