import path from 'node:path'
import { Flags } from '@oclif/core'
import { migrateStatus } from '../../../api/migrations.js'
import { MagflockCommand } from '../../../cli/base-command.js'
import { driftLines, migrateTarget, migrationSettings } from '../../../cli/migrations.js'
import { migrationStatus, type StatusResult } from '../../../migrations/runner.js'

export default class DbMigrateStatus extends MagflockCommand<StatusResult> {
  static override summary = 'Show applied and pending migrations, and drift between the files and the database.'
  static override description =
    'Drift is an applied file edited afterwards (including a CRLF-only change or a rename), an applied file that is missing, ' +
    'a gap or duplicate in the numbering. `db migrate` refuses to run while there is drift. Exits 0; `ok` in --json says whether there is drift.'
  static override examples = [
    '<%= config.bin %> db migrate status --db app',
    '<%= config.bin %> db migrate status --db-url "$DATABASE_URL" --json',
  ]
  static override flags = {
    db: Flags.string({ summary: 'Database of this flock (through the kernel).', exclusive: ['db-url'] }),
    'db-url': Flags.string({ summary: 'Postgres URL to inspect in-process. Also MAGFLOCK_DB_URL.', env: 'MAGFLOCK_DB_URL', exclusive: ['db'] }),
    dir: Flags.string({
      summary:
        'Migrations folder (config migrations.dir; default ./migrations). With --db: admin tokens only; otherwise the kernel reads the folder registered for the database, else its own migrations.dir.',
    }),
  }

  async run(): Promise<StatusResult> {
    const { flags } = await this.parse(DbMigrateStatus)
    const target = migrateTarget(flags)
    const res =
      target.kind === 'url'
        ? await migrationStatus({ connection: target.url, dir: (await migrationSettings({ dir: flags.dir, lockTimeout: 0 })).dir })
        : // Through the kernel the folder is the kernel's business: sent only when named (admin).
          await this.kernel().call(migrateStatus, { database: target.database, ...(flags.dir !== undefined ? { dir: path.resolve(flags.dir) } : {}) })
    this.log(`${res.database}: ${res.applied.length} applied, ${res.pending.length} pending${res.ok ? '' : `, ${res.drift.length} drift problem(s)`}`)
    for (const a of res.applied) {
      this.log(`  applied  ${String(a.id).padStart(5)}  ${a.name.padEnd(40)} ${a.hash.slice(0, 12)}  ${a.appliedAt ?? ''}${a.file ? '' : '  (file missing)'}`)
    }
    for (const p of res.pending) this.log(`  pending  ${String(p.id).padStart(5)}  ${p.file}`)
    if (!res.ok) {
      this.log('Drift:')
      for (const l of driftLines(res.drift)) this.log(l)
    }
    return res
  }
}
