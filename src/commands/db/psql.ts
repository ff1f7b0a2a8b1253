import { Args } from '@oclif/core'
import { dbUrl } from '../../api/db.js'
import { MagflockCommand } from '../../cli/base-command.js'
import { psqlInvocation } from '../../databases/service.js'
import { spawnLong } from '../../platform/process.js'
import { findPgBinaries } from '../../postgres/binaries.js'

export type DbPsqlResult = { database: string; exitCode: number }

export default class DbPsql extends MagflockCommand<DbPsqlResult> {
  static override summary = 'Open psql on a database as its owner (credentials from the vault, never on the command line).'
  static override description =
    'Arguments after -- go to psql. The password reaches psql through its environment (PGPASSWORD). Audited as a credential reveal. ' +
    'A database whose owner MagFlock did not create (a restored copy such as app_copy, owned by postgres) opens as the superuser for the admin token.'
  static override examples = ['<%= config.bin %> db psql app', '<%= config.bin %> db psql app -- -c "select count(*) from users"']
  static override strict = false
  static override args = { name: Args.string({ required: true, description: 'Database name.' }) }

  async run(): Promise<DbPsqlResult> {
    const { args, argv } = await this.parse(DbPsql)
    const extra = (argv as string[]).slice(1)
    const u = await this.kernel().call(dbUrl, { name: args.name, reveal: true, purpose: 'psql' })
    const inv = psqlInvocation(findPgBinaries().tool('psql'), { host: u.host, port: u.port, user: u.user ?? u.owner, password: u.password, database: u.name }, extra)
    const res = await spawnLong(inv.bin, inv.args, { env: inv.env, inheritEnv: true, detached: false, stdio: 'inherit', secrets: u.password ? [u.password] : [] })
    const exitCode = res.exitCode ?? 1
    if (exitCode !== 0) process.exitCode = exitCode
    return { database: u.name, exitCode }
  }
}
