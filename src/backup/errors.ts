import { defineError } from '../errors/index.js'

/** Error catalog for backups, verification and restore (area "backup"). */

export const BACKUP_NOT_FOUND = defineError<{ id: string }>({
  code: 'E_BACKUP_NOT_FOUND',
  class: 'not_found',
  area: 'backup',
  message: (a) => `No complete backup with id "${a.id}".`,
  hint: () => 'Run `magflock backup list` to see the backups that can be restored.',
})

export const BACKUP_INCOMPLETE = defineError<{ id: string; reason: string }>({
  code: 'E_BACKUP_INCOMPLETE',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `Backup "${a.id}" is not complete (${a.reason}); it cannot be restored.`,
  hint: () => 'Remove leftovers with `magflock backup prune`, then take a new backup with `magflock backup create`.',
})

export const BACKUP_VERIFY_FAILED = defineError<{ id: string; file: string; reason: string }>({
  code: 'E_BACKUP_VERIFY_FAILED',
  class: 'data_loss',
  area: 'backup',
  message: (a) => `Backup "${a.id}" failed verification: ${a.file}: ${a.reason}.`,
  hint: () => 'This backup is damaged and will not be restored. Restore an older one (`magflock backup list`) and take a fresh backup.',
})

export const BACKUP_TOOL_FAILED = defineError<{ tool: string; exit: string; stderr: string }>({
  code: 'E_BACKUP_TOOL_FAILED',
  class: 'internal',
  area: 'backup',
  message: (a) => `${a.tool} failed (${a.exit}): ${a.stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}; the backup was discarded.`,
  hint: () => 'Nothing was listed as restorable. Check the instance log and `magflock kernel logs`, then retry `magflock backup create`.',
})

export const BACKUP_TARGET_EXISTS = defineError<{ what: string; name: string }>({
  code: 'E_BACKUP_TARGET_EXISTS',
  class: 'already_exists',
  area: 'backup',
  message: (a) => `The restore target ${a.what} "${a.name}" already exists; restore never overwrites it.`,
  hint: () => 'Choose a new name (`--to-db NEW` / `--to-instance NEW`) or pass `--force` to replace it.',
})

export const BACKUP_KEY_MISSING = defineError<{ secret: string }>({
  code: 'E_BACKUP_KEY_MISSING',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `The backup encryption key "${a.secret}" is not in the vault.`,
  hint: (a) => `Store it with \`magflock secrets set ${a.secret}\` or set backup.encryptionKey in magflock.yaml.`,
})

export const BACKUP_KEY_MISMATCH = defineError<{ id: string; keyId: string }>({
  code: 'E_BACKUP_KEY_MISMATCH',
  class: 'permission_denied',
  area: 'backup',
  message: (a) => `The key offered does not open backup "${a.id}" (it was encrypted with key id ${a.keyId}); nothing was written.`,
  hint: () => 'Put the key with that id back in the vault (backup.encryptionKey), or rewrap old backups with `magflock backup rekey`.',
})

export const BACKUP_WAL_MISSING = defineError<{ segment: string; walDir: string }>({
  code: 'E_BACKUP_WAL_MISSING',
  class: 'data_loss',
  area: 'backup',
  message: (a) => `WAL segment ${a.segment} is missing from the archive ${a.walDir}; recovery cannot pass it.`,
  hint: () => 'Choose a target before that segment (`--target-time` / `--target-lsn`), or restore a newer backup taken after the gap.',
})

export const BACKUP_RECOVERY_FAILED = defineError<{ reason: string }>({
  code: 'E_BACKUP_RECOVERY_FAILED',
  class: 'internal',
  area: 'backup',
  message: (a) => `The restored instance did not come up: ${a.reason}.`,
  hint: () => 'Read the restored instance log (postgres.log next to its data dir); the backup itself is unchanged.',
})

export const BACKUP_TARGET_NOT_REACHED = defineError<{ last: string }>({
  code: 'E_BACKUP_TARGET_NOT_REACHED',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `Recovery replayed all the archived WAL without reaching the target (the last transaction replayed committed at ${a.last}); nothing was restored.`,
  hint: () => 'Choose an earlier --target-time / --target-lsn, or retry once the WAL up to the target is archived (the segment being written is archived when it is closed).',
})

export const BACKUP_INVALID = defineError<{ message: string }>({
  code: 'E_BACKUP_INVALID_ARGUMENT',
  class: 'invalid_argument',
  area: 'backup',
  message: (a) => a.message,
  hint: () => 'See `magflock backup --help` for the flags and examples.',
})

export const BACKUP_CRON_INVALID = defineError<{ expr: string; reason: string }>({
  code: 'E_BACKUP_CRON_INVALID',
  class: 'invalid_argument',
  area: 'backup',
  message: (a) => `backup.schedule "${a.expr}" is not a valid 5-field cron expression: ${a.reason}.`,
  hint: () => 'Use "minute hour day-of-month month day-of-week", e.g. `magflock config set backup.schedule "0 3 * * *"`.',
})

export const BACKUP_CANCELLED = defineError<{ what: string }>({
  code: 'E_BACKUP_CANCELLED',
  class: 'aborted',
  area: 'backup',
  message: (a) => `The ${a.what} was cancelled (the client went away); what it had written was removed.`,
  hint: () => 'Nothing changed: an in-place restore put the previous data dir back. Run the command again when ready.',
})

export const BACKUP_INPLACE_NEEDS_FORCE = defineError<{ instance: string; id: string }>({
  code: 'E_BACKUP_INPLACE_NEEDS_FORCE',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `Restoring ${a.id} in place would replace the data of the running primary "${a.instance}"; refused without --force.`,
  hint: (a) =>
    `Add --force to stop "${a.instance}", keep its data dir aside as data.pre-restore-<time> and restore over it; or restore a copy with --to-instance NAME.`,
})

export const BACKUP_INPLACE_HAS_REPLICAS = defineError<{ replicas: string[] }>({
  code: 'E_BACKUP_INPLACE_HAS_REPLICAS',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `An in-place restore would leave the replicas (${a.replicas.join(', ')}) following a history that no longer exists; refused.`,
  hint: () => 'Remove them first (`magflock replica remove NAME`), restore, then add them again (`magflock replica add`).',
})

export const BACKUP_ROLLBACK_FAILED = defineError<{ reason: string; previous: string; cause: string }>({
  code: 'E_BACKUP_ROLLBACK_FAILED',
  class: 'data_loss',
  area: 'backup',
  message: (a) => `The in-place restore failed (${a.cause}) and putting the previous data back failed too: ${a.reason}.`,
  hint: (a) => `The previous data dir is intact at ${a.previous}: stop the kernel, move it back to the instance's data dir, and run \`magflock up\`.`,
})

export const BACKUP_NO_SPACE = defineError<{ path: string; neededBytes: number; freeBytes: number }>({
  code: 'E_BACKUP_NO_SPACE',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) =>
    `The filesystem of ${a.path} ran out of space during the backup: it needs about ${mib(a.neededBytes)} and has ${mib(a.freeBytes)} free. The partial backup was removed.`,
  hint: (a) => `Free at least ${mib(Math.max(0, a.neededBytes - a.freeBytes))} there (\`magflock backup prune\` removes old backups) or give the backups more room, then retry \`magflock backup create\`.`,
})

export const WAL_ARCHIVE_NO_SPACE = defineError<{ path: string; freeBytes: number; neededBytes: number }>({
  code: 'E_WAL_ARCHIVE_NO_SPACE',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) =>
    `The WAL archive ${a.path} is out of space (${mib(a.freeBytes)} free, a segment needs ${mib(a.neededBytes)}): pg_receivewal stopped. Postgres keeps running; its replication slot holds the WAL not yet archived, so nothing is lost.`,
  hint: (a) =>
    `Free space on the filesystem of ${a.path} (\`magflock backup prune\` removes old backups and WAL they no longer need) or grow it; archiving resumes by itself and catches up. Until then WAL piles up in pg_wal (bounded by max_slot_wal_keep_size when set).`,
})

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`
}
