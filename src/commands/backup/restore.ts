import { Args, Flags } from '@oclif/core'
import type { z } from 'zod'
import { backupRestore } from '../../api/backup.js'
import { progressSink } from '../../cli/backup-progress.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupRestoreResult = z.infer<typeof backupRestore.output>

export default class BackupRestore extends MagflockCommand<BackupRestoreResult> {
  static override summary = 'Restore a backup: physical in place (--force), as a new supervised instance, or one database to a point in time; logical into a database.'
  static override description =
    'The backup is verified and the key checked first; nothing is stopped or written when either fails. ' +
    'Physical without --to-instance/--to-db restores over the primary: refused without --force; the primary is stopped, its data dir kept aside as ' +
    'data.pre-restore-<time> (never deleted), and on any failure put back and started again. ' +
    '--to-instance NAME makes a new instance the kernel supervises (role standalone; `magflock instance remove NAME` takes it away). ' +
    '--to-db NAME with a physical backup restores one database (--db SOURCE, default NAME) through a temporary instance. ' +
    'With --target-time/--target-lsn archived WAL from <state>/wal is replayed to that point. ' +
    'An existing database is replaced only with --force. ' +
    '--repo NAME reads the backup (and the WAL for a point in time) back from an object-store repository: the disaster-recovery path on a fresh state directory (docs/backup.md).'
  static override examples = [
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --force',
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --force --target-time "2026-11-25 10:00:00+00"',
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --to-instance before-bug --target-time "2026-11-25 10:00:00+00"',
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --to-db app_before --db app --target-time "2026-11-25 10:00:00+00"',
    '<%= config.bin %> backup restore 20261125T031500Z-l-9f8e7d --to-db app_copy',
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --repo offsite --to-instance recovered --target-time "2026-11-25 10:00:00+00"',
  ]
  static override args = { id: Args.string({ required: true, description: 'Backup id (see `magflock backup list`).' }) }
  static override flags = {
    'to-instance': Flags.string({ summary: 'Name of a new instance (physical backups); the primary\'s name means in place.', exclusive: ['to-db'] }),
    'to-db': Flags.string({ summary: 'Database to restore into (logical backups, or one database of a physical backup).', exclusive: ['to-instance'] }),
    db: Flags.string({ summary: 'With a physical backup and --to-db: the database to take from it (default: the --to-db name).', dependsOn: ['to-db'] }),
    port: Flags.integer({ summary: 'Port of the new instance (default: a free one).', min: 1, max: 65535 }),
    'target-time': Flags.string({ summary: 'Point in time to recover to, e.g. "2026-11-25 10:00:00+00".', exclusive: ['target-lsn'] }),
    'target-lsn': Flags.string({ summary: 'WAL position to recover to, e.g. 0/3000060.', exclusive: ['target-time'] }),
    repo: Flags.string({ summary: 'Repository: "local" (the state directory, default) or a name from backup.repositories.' }),
    force: Flags.boolean({ summary: 'Restore over the primary (in place), or replace an existing database / stopped data dir.', default: false }),
  }

  async run(): Promise<BackupRestoreResult> {
    const { args, flags } = await this.parse(BackupRestore)
    const sink = await progressSink({ json: this.jsonEnabled(), title: `Restoring ${args.id}`, line: (m) => this.progressLine(m) })
    let r: BackupRestoreResult
    try {
      r = await this.kernel().call(
        backupRestore,
        {
          id: args.id,
          force: flags.force,
          ...(flags['to-instance'] ? { toInstance: flags['to-instance'] } : {}),
          ...(flags['to-db'] ? { toDb: flags['to-db'] } : {}),
          ...(flags.db ? { db: flags.db } : {}),
          ...(flags.port ? { port: flags.port } : {}),
          ...(flags['target-time'] ? { targetTime: flags['target-time'] } : {}),
          ...(flags['target-lsn'] ? { targetLsn: flags['target-lsn'] } : {}),
          ...(flags.repo ? { repo: flags.repo } : {}),
        },
        { onProgress: (e) => sink.onProgress(e) },
      )
    } catch (err) {
      await sink.fail((err as Error).message)
      throw err
    }
    const summary =
      r.kind === 'database'
        ? `Restored ${r.id}${r.sourceDb && r.sourceDb !== r.target ? ` (database ${r.sourceDb})` : ''} into database ${r.target}${r.pitr ? ' at the point in time' : ''} in ${r.seconds.toFixed(1)} s.`
        : r.role === 'primary'
          ? `Restored ${r.id} in place over ${r.target}${r.pitr ? ' (point in time, new timeline)' : ' (new timeline)'} in ${r.seconds.toFixed(1)} s; it accepts writes on 127.0.0.1:${r.port}.`
          : `Restored ${r.id} as instance ${r.target} (standalone, supervised) on 127.0.0.1:${r.port}${r.pitr ? ' (point in time, promoted)' : ''} in ${r.seconds.toFixed(1)} s.`
    await sink.done(summary)
    this.log(summary)
    if (r.kind === 'instance') this.log(`Data dir: ${r.dataDir}`)
    if (r.previousDataDir) this.log(`The replaced data dir is kept at ${r.previousDataDir}; delete it when you no longer need it (rm -rf).`)
    return r
  }
}
