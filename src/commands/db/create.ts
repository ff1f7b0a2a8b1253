import { Args, Flags } from '@oclif/core'
import { dbCreate, type DbCreateResult } from '../../api/db.js'
import { MagflockCommand } from '../../cli/base-command.js'

export default class DbCreate extends MagflockCommand<DbCreateResult> {
  static override summary = 'Create a database and its owner role (password generated into the vault).'
  static override description =
    'The owner role (default: named like the database) gets LOGIN and a generated SCRAM password stored as the secret ' +
    'db.<name>.owner.password; CONNECT is revoked from PUBLIC. Exit 4 (E_DB_EXISTS) when it exists, unless --if-not-exists.'
  static override examples = [
    '<%= config.bin %> db create app',
    '<%= config.bin %> db create app --owner app_owner',
    '<%= config.bin %> db create app --if-not-exists --json',
  ]
  static override args = { name: Args.string({ required: true, description: 'Database name (lowercase identifier).' }) }
  static override flags = {
    owner: Flags.string({ summary: 'Owner role; created when it does not exist.' }),
    'if-not-exists': Flags.boolean({ summary: 'Succeed (created: false) when the database already exists.', default: false }),
  }

  async run(): Promise<DbCreateResult> {
    const { args, flags } = await this.parse(DbCreate)
    const res = await this.kernel().call(dbCreate, { name: args.name, owner: flags.owner, ifNotExists: flags['if-not-exists'] })
    if (!res.created) this.log(`Database ${res.name} already exists (owner ${res.owner}); nothing changed.`)
    else {
      this.log(`Created database ${res.name} owned by ${res.owner}${res.roleCreated ? ' (new role)' : ''}.`)
      if (res.passwordSecret) this.log(`Owner password is in the vault as ${res.passwordSecret}; \`magflock db url ${res.name} --reveal\` shows it.`)
    }
    return res
  }
}
