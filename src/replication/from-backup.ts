import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { extractPhysical } from '../backup/extract.js'
import { openBackupKey } from '../backup/keys.js'
import { listBackups, loadBackup, type BackupManifest } from '../backup/manifest.js'
import { assertLayout } from '../backup/verify.js'
import { firstMissingSegment, listArchive, restoreCommand, segmentNo, WAL_SEGMENT_BYTES } from '../backup/wal.js'
import { exists } from '../platform/fs.js'
import { REPLICA_BACKUP_UNUSABLE, REPLICA_DIR_EXISTS } from './errors.js'
import { formatLsn } from '../postgres/lsn.js'
import {
  chownTree,
  clientConfig,
  createSlot,
  dropSlot,
  sql,
  standbySettings,
  writeAutoConf,
  writePassfile,
  writeStandbySignal,
  type PgNode,
  type ReplicationEnv,
} from './pg.js'
import { slotName, waitStreaming, type Progress } from './actions.js'

/**
 * A replica seeded from the latest (or a named) physical backup instead of a fresh
 * pg_basebackup of the primary: the backup is verified and extracted locally, the WAL written
 * since comes from the archive (`restore_command` on <state>/wal) and then by streaming from
 * a slot created BEFORE the gap is checked, so the primary keeps everything from that point on.
 * The primary only serves the WAL since the backup, not a copy of every file.
 *
 * Every refusal (unknown id, logical backup, another cluster's backup, a WAL gap the archive
 * cannot fill) happens before the replica's directory exists; a failure later removes the
 * directory and the slot again.
 */
export interface FromBackupOptions {
  backupsDir: string
  walDir: string
  /** A backup id, or 'latest' (the newest complete physical backup). */
  id: string
  /** Unwraps an encrypted backup's data key (undefined for a plain backup). */
  kek: (m: BackupManifest) => Promise<Buffer | undefined>
  progress?: Progress
  timeoutMs?: number
}

export async function resolveBackupId(backupsDir: string, id: string): Promise<string> {
  if (id !== 'latest') return id
  const physical = (await listBackups(backupsDir)).complete.filter((m) => m.type === 'physical')
  const latest = physical[physical.length - 1]
  if (!latest) throw REPLICA_BACKUP_UNUSABLE({ id, reason: 'there is no complete physical backup' })
  return latest.id
}

export async function createReplicaFromBackup(env: ReplicationEnv, primary: PgNode, replica: PgNode, o: FromBackupOptions): Promise<{ slot: string; backupId: string }> {
  const progress = o.progress ?? (() => undefined)
  const slot = slotName(replica.name)
  if (await exists(path.join(replica.dataDir, 'PG_VERSION'))) throw REPLICA_DIR_EXISTS({ name: replica.name, dir: replica.dataDir })
  const id = await resolveBackupId(o.backupsDir, o.id)
  // A wrong or missing key is refused here, before anything is written.
  const { dir, manifest, dataKey } = await openBackupKey(o.backupsDir, id, await o.kek((await loadBackup(o.backupsDir, id)).manifest))
  if (manifest.type !== 'physical') throw REPLICA_BACKUP_UNUSABLE({ id, reason: 'it is a logical backup (pg_dump); a replica needs a physical one' })
  const pcfg = clientConfig(env, primary)
  const [sys] = await sql<{ id: string; tli: string }>(pcfg, `select system_identifier::text as id, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli from pg_control_system()`)
  if (manifest.systemIdentifier && sys && manifest.systemIdentifier !== sys.id) {
    throw REPLICA_BACKUP_UNUSABLE({ id, reason: `it was taken from another cluster (system identifier ${manifest.systemIdentifier}, the primary's is ${sys.id})` })
  }

  // The slot first: from its restart LSN on, the primary keeps the WAL; before it, the archive must.
  await dropSlot(pcfg, slot)
  await createSlot(pcfg, slot)
  let made = false
  try {
    const [s] = await sql<{ lsn: string }>(pcfg, `select restart_lsn::text as lsn from pg_replication_slots where slot_name = $1`, [slot])
    const restart = s?.lsn
    if (!restart) throw REPLICA_BACKUP_UNUSABLE({ id, reason: 'the replication slot reserved no WAL' })
    // Timeline changes since the backup are followed through the archive's history files;
    // the gap check covers the common case of one timeline.
    if (Number.parseInt(sys?.tli ?? '0', 16) === manifest.timeline && segmentNo(restart) > segmentNo(manifest.stopLsn) + 1n) {
      const lastNeeded = formatLsn(segmentNo(restart) * WAL_SEGMENT_BYTES - 1n)
      const missing = firstMissingSegment(await listArchive(o.walDir), manifest.timeline, manifest.stopLsn, lastNeeded)
      if (missing) throw REPLICA_BACKUP_UNUSABLE({ id, reason: `WAL segment ${missing} written since the backup is not in the archive ${o.walDir}` })
    }
    // The layout now; every file's hash while it is extracted (one read of the backup, as the
    // restore does): a damaged file fails the extraction and the directory is removed below.
    progress('verify', `checking backup ${id}`, 0.05)
    await assertLayout(dir, manifest)

    progress('extract', `restoring and verifying backup ${id} into ${replica.name}`, 0.1)
    await fsp.mkdir(replica.instanceDir, { recursive: true, mode: 0o700 })
    made = true
    await chownTree(env, replica.instanceDir)
    await fsp.mkdir(replica.dataDir, { mode: 0o700 })
    await chownTree(env, replica.dataDir)
    await extractPhysical({ dir, manifest, dataKey, dataDir: replica.dataDir, runAs: env.runAs, withManifest: false })

    progress('configure', `configuring ${replica.name} as a standby of ${primary.name}`, 0.8)
    await fsp.rm(path.join(replica.dataDir, 'postmaster.opts'), { force: true })
    await writePassfile(env, replica)
    await writeAutoConf(env, replica.dataDir, { ...standbySettings(env, primary, replica, slot), restore_command: restoreCommand(o.walDir) })
    await writeStandbySignal(env, replica.dataDir)
    progress('start', `starting ${replica.name} on port ${replica.port}`, 0.9)
    await env.lifecycle.start(replica)
    await waitStreaming(env, primary, replica.name, o.timeoutMs ?? 5 * 60_000)
    progress('done', `${replica.name} is streaming from ${primary.name}`, 1)
    return { slot, backupId: id }
  } catch (err) {
    if (made) {
      await env.lifecycle.stop(replica, 'immediate').catch(() => undefined)
      await fsp.rm(replica.instanceDir, { recursive: true, force: true })
    }
    await dropSlot(pcfg, slot).catch(() => false)
    throw err
  }
}
