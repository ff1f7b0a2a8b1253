import { Args, Flags } from '@oclif/core'
import { dbUrl, type DbUrlResult } from '../../api/db.js'
import { MagflockCommand } from '../../cli/base-command.js'

export default class DbUrl extends MagflockCommand<DbUrlResult> {
  static override summary = "Print a database's connection URL (the password only with --reveal)."
  static override description = 'Without --reveal the URL carries no password. --reveal is recorded in the audit log; viewer tokens may not use it.'
  static override examples = [
    '<%= config.bin %> db url app',
    'export DATABASE_URL=$(<%= config.bin %> db url app --reveal)',
    '<%= config.bin %> db url app --role primary --reveal   # survives a failover (target_session_attrs=read-write)',
    '<%= config.bin %> db url app --reveal --json',
    '<%= config.bin %> db url app --pooled --reveal   # through the managed PgBouncer',
    '<%= config.bin %> db url app --pooled --read-only --reveal   # app.ro: round robin over the replicas',
  ]
  static override args = { name: Args.string({ required: true, description: 'Database name.' }) }
  // Prints the owner password on request (--reveal): exempt from output scrubbing.
  static override allowSecretOutput = true
  static override flags = {
    reveal: Flags.boolean({ summary: 'Include the owner password from the vault.', default: false }),
    role: Flags.string({
      summary: 'A multi-host URL over the whole flock that reaches the primary (read-write) or any instance, across failovers.',
      options: ['primary', 'any'],
    }),
    pooled: Flags.boolean({ summary: 'Through the managed PgBouncer, which follows the primary across switchovers and failovers (docs/pooling.md).', default: false, exclusive: ['role'] }),
    'read-only': Flags.boolean({ summary: 'With --pooled: the read-only pool `<name>.ro`, round robin over streaming replicas within pooler.readOnly.maxLagBytes.', default: false, dependsOn: ['pooled'] }),
  }

  async run(): Promise<DbUrlResult> {
    const { args, flags } = await this.parse(DbUrl)
    const res = await this.kernel().call(dbUrl, { name: args.name, reveal: flags.reveal, purpose: 'url', ...(flags.role ? { role: flags.role as 'primary' | 'any' } : {}), ...(flags.pooled ? { pooled: true } : {}), ...(flags['read-only'] ? { readOnly: true } : {}) })
    this.log(res.url)
    return res
  }
}
