import { Flags } from '@oclif/core'
import type { z } from 'zod'
import { backupCreate } from '../../api/backup.js'
import { progressSink } from '../../cli/backup-progress.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupCreateResult = z.infer<typeof backupCreate.output>

export default class BackupCreate extends MagflockCommand<BackupCreateResult> {
  static override summary = 'Take a backup: physical (whole instance) or logical (one database).'
  static override description =
    'Physical: pg_basebackup, tar, server-side lz4 (backup.compression), WAL included, so it restores on its own and is the base for point-in-time restore. ' +
    'Logical: pg_dump -Fd -j2 of one database. --encrypt seals every file with AES-256-GCM under a fresh data key wrapped by the vault key ' +
    '(backup.encryptionKey, default secret backup.kek). The backup is listed only once its manifest is written last.'
  static override examples = [
    '<%= config.bin %> backup create',
    '<%= config.bin %> backup create --encrypt --label before-upgrade',
    '<%= config.bin %> backup create --type logical --db app --json',
  ]
  static override flags = {
    type: Flags.string({ summary: 'physical, or logical (the default when --db is given).', options: ['physical', 'logical'] }),
    db: Flags.string({ summary: 'Database for a logical backup.' }),
    encrypt: Flags.boolean({ summary: 'Encrypt with the vault key (backup.encryptionKey).', default: false }),
    label: Flags.string({ summary: 'Free-text label stored in the manifest (max 100 chars).' }),
  }

  async run(): Promise<BackupCreateResult> {
    const { flags } = await this.parse(BackupCreate)
    const type = (flags.type ?? (flags.db ? 'logical' : 'physical')) as 'physical' | 'logical'
    const sink = await progressSink({ json: this.jsonEnabled(), title: `Backing up (${type})`, line: (m) => this.progressLine(m) })
    let r: BackupCreateResult
    try {
      r = await this.kernel().call(
        backupCreate,
        { type, encrypt: flags.encrypt, ...(flags.db ? { db: flags.db } : {}), ...(flags.label ? { label: flags.label } : {}) },
        { onProgress: (e) => sink.onProgress(e) },
      )
    } catch (err) {
      await sink.fail((err as Error).message)
      throw err
    }
    const summary = `Backup ${r.id} (${r.type}${r.encrypted ? ', encrypted' : ''}) complete: ${(r.sizeBytes / 1048576).toFixed(1)} MiB in ${r.seconds.toFixed(1)} s from ${r.source}, stored in ${r.repositories.join(', ')}.`
    await sink.done(summary)
    this.log(summary)
    this.log(`Verify it: magflock backup verify ${r.id}`)
    return r
  }
}
