import type { z } from 'zod'
import { backupList } from '../../api/backup.js'
import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupListResult = z.infer<typeof backupList.output>

export default class BackupList extends MagflockCommand<BackupListResult> {
  static override summary = 'List restorable backups (oldest first, by stop LSN/time) and any incomplete leftovers.'
  static override examples = ['<%= config.bin %> backup list', '<%= config.bin %> backup list --json', '<%= config.bin %> backup list --repo offsite']
  static override flags = {
    repo: Flags.string({ summary: 'Repository: "local" (the state directory, default) or a name from backup.repositories.' }),
  }

  async run(): Promise<BackupListResult> {
    const { flags } = await this.parse(BackupList)
    const r = await this.kernel().call(backupList, flags.repo ? { repo: flags.repo } : {})
    if (r.backups.length === 0) this.log('No backups yet. Take one with `magflock backup create`.')
    for (const b of r.backups) {
      const what = b.type === 'logical' ? `logical ${b.databases.join(',')}` : 'physical'
      this.log(
        `${b.id}  ${what.padEnd(18)} ${b.stopTime}  ${(b.sizeBytes / 1048576).toFixed(1).padStart(8)} MiB  ${b.compression}${b.encrypted ? ` encrypted(key ${b.keyId})` : ''}  lsn ${b.stopLsn}  ${b.label}`,
      )
    }
    const prune = r.repository === 'local' ? 'magflock backup prune' : `magflock backup prune --repo ${r.repository}`
    for (const i of r.incomplete) this.log(`${i.id}  NOT RESTORABLE (${i.state}): ${i.reason}  — \`${prune}\` removes it`)
    return r
  }
}
