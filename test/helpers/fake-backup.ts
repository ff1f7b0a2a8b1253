import { completeBackup, describeFiles, type BackupManifest } from '../../src/backup/manifest.js'

/**
 * Completes the partial backup `partial` (whatever files a test wrote into it) with the manifest
 * a small physical tar backup would have, `over` changing what the test needs (LSNs, encryption).
 */
export async function completeFakeBackup(backupsDir: string, partial: string, id: string, over: Partial<BackupManifest> = {}): Promise<BackupManifest> {
  const files = await describeFiles(partial)
  const now = new Date().toISOString()
  const m: BackupManifest = {
    formatVersion: 1,
    id,
    type: 'physical',
    label: 'test',
    format: 'tar',
    startLsn: '0/2000028',
    stopLsn: '0/2000100',
    startTime: now,
    stopTime: now,
    timeline: 1,
    pgVersion: '15',
    systemIdentifier: '7000000000000000001',
    databases: ['postgres'],
    compression: 'lz4',
    encryption: null,
    tool: 'test',
    sourceBytes: 1,
    totalBytes: files.reduce((s, f) => s + f.size, 0),
    files,
    ...over,
  }
  await completeBackup(backupsDir, partial, m)
  return m
}
