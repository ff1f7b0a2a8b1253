import path from 'node:path'
import { Flags } from '@oclif/core'
import { migrate } from '../../../api/migrations.js'
import { MagflockCommand } from '../../../cli/base-command.js'
import { USAGE } from '../../../errors/index.js'
import { driftLines, driftOf, migrateTarget, migrationSettings, progressSink } from '../../../cli/migrations.js'
import { runMigrations, type MigrateResult } from '../../../migrations/runner.js'

export default class DbMigrate extends MagflockCommand<MigrateResult> {
  static override summary = 'Apply pending migrations (each file in its own transaction).'
  static override description =
    'Runs postgres-migrations with MagFlock guard rails: a drift check first (edited, deleted or renumbered files stop the run), ' +
    'a lock with a timeout naming who holds it, lint of disable-transaction files, and a clear report of a failing file. ' +
    '--db targets a database of this flock through the kernel, which reads the folder an admin registered for the database, else `migrations.dir` of its own config ' +
    '(only an admin token may pass --dir or --register, or apply .js migrations, which then run as the OS user nobody); ' +
    '--db-url runs in-process against any Postgres (CI). --dry-run and `status` never run .js files. ' +
    'Exit codes: 0 applied or nothing to do, 5 drift/lint/precondition, 10 lock timeout, 12 a migration failed (see docs/ci.md).'
  static override examples = [
    '<%= config.bin %> db migrate --db app',
    '<%= config.bin %> db migrate --db app --dry-run',
    '<%= config.bin %> db migrate --db app --dir ./db/app --register   # admin: use this folder for app from now on',
    '<%= config.bin %> db migrate --db-url "$DATABASE_URL" --json',
    '<%= config.bin %> db migrate --db-url "$DATABASE_URL" --dir db/migrations --lock-timeout 120',
  ]
  static override flags = {
    db: Flags.string({ summary: 'Database of this flock (through the kernel).', exclusive: ['db-url'] }),
    'db-url': Flags.string({
      summary: 'Postgres URL to migrate in-process, e.g. in CI. Also MAGFLOCK_DB_URL.',
      env: 'MAGFLOCK_DB_URL',
      exclusive: ['db'],
    }),
    dir: Flags.string({
      summary:
        'Migrations folder (config migrations.dir; default ./migrations). With --db: admin tokens only; otherwise the kernel reads the folder registered for the database, else its own migrations.dir.',
    }),
    register: Flags.boolean({
      summary: 'With --db and --dir (admin token): remember the folder as this database\'s for every later run, by any role.',
      default: false,
    }),
    'dry-run': Flags.boolean({ summary: 'List what would run; change nothing (still fails on drift or lint).', default: false }),
    'create-db': Flags.boolean({
      summary: 'With --db-url: create the database first when it does not exist (safe when several jobs race).',
      default: false,
    }),
    'lock-timeout': Flags.integer({
      summary: 'Seconds to wait for another migration to finish (config migrations.lockTimeoutSeconds; default 60).',
      min: 1,
      max: 3600,
    }),
  }

  async run(): Promise<MigrateResult> {
    const { flags } = await this.parse(DbMigrate)
    const target = migrateTarget(flags)
    if (flags['create-db'] && target.kind !== 'url') {
      throw USAGE({ message: '--create-db works with --db-url only; create a database of this flock with `magflock db create NAME`.' })
    }
    if (flags.register && (target.kind !== 'kernel' || flags.dir === undefined)) {
      throw USAGE({ message: '--register needs --db NAME and --dir PATH (an admin token): it remembers PATH as the migrations folder of NAME.' })
    }
    const dryRun = flags['dry-run']
    const title = `Migrating ${target.kind === 'url' ? 'database' : target.database}`
    const sink = await progressSink({ json: this.jsonEnabled(), title, line: (m) => this.progressLine(m) })
    let res: MigrateResult
    try {
      if (target.kind === 'url' && flags['create-db']) {
        const { ensureDatabaseFromUrl } = await import('../../../databases/service.js')
        const made = await ensureDatabaseFromUrl(target.url)
        if (made.created) this.progressLine(`Created database ${made.database}.`)
      }
      if (target.kind === 'url') {
        const { dir, lockTimeoutSeconds } = await migrationSettings({ dir: flags.dir, lockTimeout: flags['lock-timeout'] })
        res = await runMigrations({ connection: target.url, dir, dryRun, lockTimeoutMs: lockTimeoutSeconds * 1000, onProgress: (e) => sink.onProgress(e) })
      } else {
        // Through the kernel, folder and lock timeout come from the kernel's own config unless
        // named here (a folder: admin tokens only).
        res = await this.kernel().call(
          migrate,
          {
            database: target.database,
            dryRun,
            register: flags.register,
            ...(flags.dir !== undefined ? { dir: path.resolve(flags.dir) } : {}),
            ...(flags['lock-timeout'] !== undefined ? { lockTimeoutSeconds: flags['lock-timeout'] } : {}),
          },
          { onProgress: (e) => sink.onProgress(e) },
        )
      }
    } catch (err) {
      await sink.fail((err as Error).message)
      const drift = driftOf(err)
      if (drift) for (const l of driftLines(drift)) this.progressLine(l)
      throw err
    }
    if (dryRun) {
      await sink.done(`${res.pending.length} pending`)
      if (res.pending.length === 0) this.log(`${res.database}: nothing to apply (${res.alreadyApplied} applied).`)
      else {
        this.log(`${res.database}: ${res.pending.length} migration(s) would run:`)
        for (const m of res.pending) this.log(`  ${m.file}${m.transactional ? '' : '  (no transaction)'}`)
      }
    } else {
      const summary =
        res.applied.length === 0
          ? `${res.database} is up to date (${res.alreadyApplied} applied).`
          : `Applied ${res.applied.length} migration(s) to ${res.database} in ${(res.durationMs / 1000).toFixed(1)} s.`
      await sink.done(summary)
      this.log(summary)
    }
    return res
  }
}
