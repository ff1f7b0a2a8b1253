import { Flags } from '@oclif/core'
import type { z } from 'zod'
import { backupRekey } from '../../api/backup.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type BackupRekeyResult = z.infer<typeof backupRekey.output>

export default class BackupRekey extends MagflockCommand<BackupRekeyResult> {
  static override summary = 'Rewrap the data keys of encrypted backups under a new vault key (no data is rewritten).'
  static override description =
    'Put the new key in the vault first (under backup.encryptionKey, default backup.kek) and keep the old one under another name; ' +
    'rekey unwraps each backup\'s data key with the old key and wraps it with the new one, in the local repository and in every ' +
    'object-store repository (there also the key of each WAL object). Only manifest.json and WAL object headers change; ' +
    'objects already under the new key are skipped, so an interrupted rekey is finished by running it again.'
  static override examples = [
    '<%= config.bin %> backup rekey --from backup.kek.old',
    '<%= config.bin %> backup rekey --from backup.kek.2025 --to backup.kek.2026 --json',
  ]
  static override flags = {
    from: Flags.string({ summary: 'Vault secret holding the old key.', required: true }),
    to: Flags.string({ summary: 'Vault secret holding the new key (default backup.encryptionKey or backup.kek).' }),
  }

  async run(): Promise<BackupRekeyResult> {
    const { flags } = await this.parse(BackupRekey)
    const r = await this.kernel().call(backupRekey, { fromSecret: flags.from, ...(flags.to ? { toSecret: flags.to } : {}) })
    this.log(`Rewrapped ${r.rewrapped.length} backup(s) under key ${r.newKeyId}.`)
    for (const s of r.skipped) this.log(`  skipped ${s.id}: ${s.reason}`)
    for (const x of r.repositories) {
      this.log(`Repository ${x.repository}: rewrapped ${x.rewrapped.length} backup(s) and ${x.walRewrapped} WAL object(s); ${x.walUnchanged} WAL object(s) already under the key or not encrypted.`)
      for (const s of x.skipped) this.log(`  skipped ${s.id}: ${s.reason}`)
      for (const s of x.walSkipped) this.log(`  skipped WAL ${s.name}: ${s.reason}`)
    }
    return r
  }
}
