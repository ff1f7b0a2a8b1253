import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { formatLsn } from './lsn.js'

/**
 * The start of pg_control (src/include/catalog/pg_control.h, unchanged since PostgreSQL 11):
 * system_identifier u64 @0, pg_control_version u32 @8, catalog_version_no u32 @12, state
 * (DBState) i32 @16, time i64 @24, checkPoint (XLogRecPtr) u64 @32. A plain 40-byte read,
 * so a switchover can watch for the shutdown checkpoint every few ms where pg_controldata
 * would cost a process each time. undefined for a layout this code does not know.
 */
export async function readControlFile(dataDir: string): Promise<{ shutDown: boolean; inProduction: boolean; checkpointLsn: string } | undefined> {
  const fh = await fsp.open(path.join(dataDir, 'global', 'pg_control'), 'r')
  try {
    const b = Buffer.alloc(40)
    const { bytesRead } = await fh.read(b, 0, 40, 0)
    // Written in the host's byte order; this reads little-endian only.
    if (bytesRead < 40 || os.endianness() !== 'LE') return undefined
    const version = b.readUInt32LE(8)
    if (version < 1100 || version > 1900) return undefined
    const lsn = b.readBigUInt64LE(32)
    // DBState: 1 = DB_SHUTDOWNED, written together with the shutdown checkpoint's location;
    // 6 = DB_IN_PRODUCTION, written when recovery is over (after pg_is_in_recovery() turns false).
    const state = b.readInt32LE(16)
    return { shutDown: state === 1, inProduction: state === 6, checkpointLsn: formatLsn(lsn) }
  } finally {
    await fh.close()
  }
}
