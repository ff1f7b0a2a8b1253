import { z } from 'zod'
import { registerEventType } from '../kernel/events.js'

/**
 * Event types the backup area publishes. The kernel registers these schemas with its event
 * bus (`backupEventSchemas`); payloads never contain key material or passwords.
 */
export const BackupCompleted = z.object({
  id: z.string(),
  type: z.enum(['physical', 'logical']),
  database: z.string().optional(),
  bytes: z.number(),
  seconds: z.number(),
  encrypted: z.boolean(),
  scheduled: z.boolean(),
})
export const BackupFailed = z.object({ type: z.enum(['physical', 'logical']), code: z.string(), message: z.string(), scheduled: z.boolean() })
export const BackupRestored = z.object({ id: z.string(), target: z.string(), pitr: z.boolean(), seconds: z.number() })
export const BackupPruned = z.object({ removed: z.array(z.string()), walRemoved: z.number(), dryRun: z.boolean() })
/** Alert-worthy: the archive falls behind (bytes of WAL not yet archived) or the receiver is down. */
export const WalArchiveLagging = z.object({ lagBytes: z.number(), thresholdBytes: z.number(), slotActive: z.boolean() })
export const WalArchiverDown = z.object({ reason: z.string(), restarts: z.number() })

export const backupEventSchemas = {
  'backup.completed': BackupCompleted,
  'backup.failed': BackupFailed,
  'backup.restored': BackupRestored,
  'backup.pruned': BackupPruned,
  'wal.archive_lagging': WalArchiveLagging,
  'wal.archiver_down': WalArchiverDown,
} as const
export type BackupEventType = keyof typeof backupEventSchemas

// Registered at module load, next to the code that publishes (src/kernel/events.ts contract).
for (const [type, schema] of Object.entries(backupEventSchemas)) registerEventType(type, schema)
