import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { migrationSettings } from '../../cli/migrations.js'
import { newMigration, type NewMigrationResult } from '../../migrations/new.js'

export default class MigrationNew extends MagflockCommand<NewMigrationResult> {
  static override summary = 'Write the next numbered migration file from the template.'
  static override examples = [
    '<%= config.bin %> migration new add-users-table',
    '<%= config.bin %> migration new seed-plans --js',
    '<%= config.bin %> migration new add-index --dir db/migrations --json',
  ]
  static override args = { name: Args.string({ required: true, description: 'Short name: letters, digits, "-" and "_".' }) }
  static override flags = {
    dir: Flags.string({ summary: 'Migrations folder (config migrations.dir; default ./migrations).' }),
    js: Flags.boolean({ summary: 'A JavaScript migration exporting generateSql().', default: false }),
  }

  async run(): Promise<NewMigrationResult> {
    const { args, flags } = await this.parse(MigrationNew)
    const res = await newMigration({ dir: (await migrationSettings({ dir: flags.dir, lockTimeout: 0 })).dir, name: args.name, type: flags.js ? 'js' : 'sql' })
    this.log(`Created ${res.path}`)
    return res
  }
}
