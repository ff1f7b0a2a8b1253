import { Args, Flags } from '@oclif/core'
import type { z } from 'zod'
import { backupVerify } from '../../api/backup.js'
import { BACKUP_VERIFY_FAILED } from '../../backup/errors.js'
import { progressSink } from '../../cli/backup-progress.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupVerifyResult = z.infer<typeof backupVerify.output>

export default class BackupVerify extends MagflockCommand<BackupVerifyResult> {
  static override summary = 'Re-hash every file of a backup against its manifest (and run pg_verifybackup on physical backups).'
  static override description = 'Exit 0 when every file matches; exit 11 (E_BACKUP_VERIFY_FAILED) naming each damaged file otherwise.'
  static override examples = ['<%= config.bin %> backup verify 20261125T030000Z-p-1a2b3c', '<%= config.bin %> backup verify 20261125T030000Z-p-1a2b3c --no-deep --json', '<%= config.bin %> backup verify 20261125T030000Z-p-1a2b3c --repo offsite']
  static override args = { id: Args.string({ required: true, description: 'Backup id (see `magflock backup list`).' }) }
  static override flags = {
    repo: Flags.string({ summary: 'Repository: "local" (the state directory, default) or a name from backup.repositories.' }),
    deep: Flags.boolean({ summary: 'Also extract and run pg_verifybackup (physical).', default: true, allowNo: true }),
  }

  async run(): Promise<BackupVerifyResult> {
    const { args, flags } = await this.parse(BackupVerify)
    const sink = await progressSink({ json: this.jsonEnabled(), title: `Verifying ${args.id}`, line: (m) => this.progressLine(m) })
    const r = await this.kernel().call(backupVerify, { id: args.id, deep: flags.deep, ...(flags.repo ? { repo: flags.repo } : {}) }, { onProgress: (e) => sink.onProgress(e) })
    if (!r.ok) {
      await sink.fail(`${r.problems.length} problem(s)`)
      const first = r.problems[0]!
      throw BACKUP_VERIFY_FAILED({ id: r.id, file: first.file, reason: first.reason }, { details: { problems: r.problems } })
    }
    const summary = `${r.id}: ${r.filesChecked} files, ${(r.bytesChecked / 1048576).toFixed(1)} MiB match the manifest${r.deep ? '; pg_verifybackup OK' : ''}.`
    await sink.done(summary)
    this.log(summary)
    return r
  }
}
