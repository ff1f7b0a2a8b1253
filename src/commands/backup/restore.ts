import { Args, Flags } from '@oclif/core'
import type { z } from 'zod'
import { backupRestore } from '../../api/backup.js'
import { progressSink } from '../../backup/progress.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupRestoreResult = z.infer<typeof backupRestore.output>

export default class BackupRestore extends MagflockCommand<BackupRestoreResult> {
  static override summary = 'Restore a backup: physical into a new instance (optionally to a point in time), logical into a database.'
  static override description =
    'The backup is verified first and the key checked first; nothing is written when either fails. ' +
    'A restore never replaces a running instance, and replaces an existing database or stopped data dir only with --force. ' +
    'With --target-time/--target-lsn the new instance replays archived WAL from <state>/wal to that point and is promoted.'
  static override examples = [
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --to-instance restored',
    '<%= config.bin %> backup restore 20261125T030000Z-p-1a2b3c --to-instance before-bug --target-time "2026-11-25 10:00:00+00"',
    '<%= config.bin %> backup restore 20261125T031500Z-l-9f8e7d --to-db app_copy',
  ]
  static override args = { id: Args.string({ required: true, description: 'Backup id (see `magflock backup list`).' }) }
  static override flags = {
    'to-instance': Flags.string({ summary: 'Name of the new instance (physical backups).', exclusive: ['to-db'] }),
    'to-db': Flags.string({ summary: 'Database to restore into (logical backups).', exclusive: ['to-instance'] }),
    port: Flags.integer({ summary: 'Port of the new instance (default: a free one).', min: 1, max: 65535 }),
    'target-time': Flags.string({ summary: 'Point in time to recover to, e.g. "2026-11-25 10:00:00+00".', exclusive: ['target-lsn'] }),
    'target-lsn': Flags.string({ summary: 'WAL position to recover to, e.g. 0/3000060.', exclusive: ['target-time'] }),
    force: Flags.boolean({ summary: 'Replace an existing database / stopped data dir.', default: false }),
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
          ...(flags.port ? { port: flags.port } : {}),
          ...(flags['target-time'] ? { targetTime: flags['target-time'] } : {}),
          ...(flags['target-lsn'] ? { targetLsn: flags['target-lsn'] } : {}),
        },
        { onProgress: (e) => sink.onProgress(e) },
      )
    } catch (err) {
      await sink.fail((err as Error).message)
      throw err
    }
    const summary =
      r.kind === 'database'
        ? `Restored ${r.id} into database ${r.target} in ${r.seconds.toFixed(1)} s.`
        : `Restored ${r.id} as instance ${r.target} on 127.0.0.1:${r.port}${r.pitr ? ' (point in time, promoted)' : ''} in ${r.seconds.toFixed(1)} s.`
    await sink.done(summary)
    this.log(summary)
    if (r.kind === 'instance') this.log(`Data dir: ${r.dataDir}`)
    return r
  }
}
