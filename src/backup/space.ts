import { promises as fsp } from 'node:fs'
import { isMagflockError } from '../errors/index.js'
import { BACKUP_NO_SPACE } from './errors.js'

/**
 * ENOSPC during a backup, whether our own write failed (Node's ENOSPC) or a tool's did
 * (pg_dump/pg_basebackup say "No space left on device" on stderr).
 */
export function isNoSpace(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') return true
  if (isMagflockError(err) && err.code === 'E_BACKUP_TOOL_FAILED') return /No space left on device/i.test(err.message)
  return false
}

/**
 * After ENOSPC: removes the whole partial backup (a `.failed` leftover would keep the disk
 * full) and returns E_BACKUP_NO_SPACE naming the backups directory, the space the backup
 * needs (`neededBytes`: the source's size, an upper bound for a dump) and what is free now.
 */
export async function noSpaceFailure(partialDir: string, backupsDir: string, neededBytes: number, cause: unknown): Promise<Error> {
  await fsp.rm(partialDir, { recursive: true, force: true }).catch(() => undefined)
  const st = await fsp.statfs(backupsDir).catch(() => undefined)
  const freeBytes = st ? Number(st.bavail) * Number(st.bsize) : 0
  return BACKUP_NO_SPACE({ path: backupsDir, neededBytes, freeBytes }, { cause, details: { path: backupsDir, neededBytes, freeBytes } })
}
