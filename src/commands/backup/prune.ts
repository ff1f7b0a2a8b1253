import { Flags } from '@oclif/core'
import type { z } from 'zod'
import { backupPrune } from '../../api/backup.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupPruneResult = z.infer<typeof backupPrune.output>

export default class BackupPrune extends MagflockCommand<BackupPruneResult> {
  static override summary = 'Delete old backups by count and age, and the WAL no kept backup needs.'
  static override description =
    'Backups are ordered by stop LSN/time, never by name; the newest backup of each series (physical; logical per database) is always kept; ' +
    'WAL is removed only below the oldest kept physical backup. Incomplete leftovers are removed too. --dry-run lists what would go.'
  static override examples = [
    '<%= config.bin %> backup prune --keep-last 7 --dry-run',
    '<%= config.bin %> backup prune --keep-last 3 --keep-daily 7 --keep-weekly 4',
  ]
  static override flags = {
    repo: Flags.string({ summary: 'Repository: "local" (the state directory, default) or a name from backup.repositories.' }),
    'keep-last': Flags.integer({ summary: 'Keep the newest N backups of each series.', min: 0 }),
    'keep-daily': Flags.integer({ summary: 'Keep the newest backup of each of the last D days.', min: 0 }),
    'keep-weekly': Flags.integer({ summary: 'Keep the newest backup of each of the last W ISO weeks.', min: 0 }),
    'dry-run': Flags.boolean({ summary: 'Only list what would be deleted.', default: false }),
  }

  async run(): Promise<BackupPruneResult> {
    const { flags } = await this.parse(BackupPrune)
    const r = await this.kernel().call(backupPrune, {
      dryRun: flags['dry-run'],
      ...(flags.repo ? { repo: flags.repo } : {}),
      ...(flags['keep-last'] !== undefined ? { keepLast: flags['keep-last'] } : {}),
      ...(flags['keep-daily'] !== undefined ? { keepDaily: flags['keep-daily'] } : {}),
      ...(flags['keep-weekly'] !== undefined ? { keepWeekly: flags['keep-weekly'] } : {}),
    })
    const verb = r.dryRun ? 'would delete' : 'deleted'
    for (const id of r.removed) this.log(`${verb} ${id}`)
    for (const id of r.leftoversRemoved) this.log(`${verb} incomplete leftover ${id}`)
    if (r.walRemoved.length) this.log(`${verb} ${r.walRemoved.length} WAL segment(s) up to ${r.walRemoved[r.walRemoved.length - 1]}`)
    for (const k of r.kept) this.log(`keep ${k.id} (${k.reasons.join(', ')})`)
    return r
  }
}
