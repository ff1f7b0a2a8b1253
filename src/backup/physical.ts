import { promises as fsp } from 'node:fs'
import path from 'node:path'
import type pg from 'pg'
import type { OsUser } from '../platform/os-user.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { ENCRYPTED_SUFFIX, FRAME_SIZE, keyIdOf, newDataKey, wrapKey } from './crypto.js'
import { BACKUP_INVALID, BACKUP_TOOL_FAILED } from './errors.js'
import {
  completeBackup,
  describeFiles,
  failBackup,
  newBackupId,
  type BackupManifest,
  type Compression,
  type EncryptionInfo,
} from './manifest.js'
import { sourceInfo, withClient } from './sql.js'
import { isNoSpace, noSpaceFailure } from './space.js'
import { allOrFirstError, encryptFileInPlace, encryptSink, followWrites, hashSink, makeBackupDir, pgEnv, runTool, secretsOf, type FileDigest, type OnProgress, type Tee } from './tools.js'
import { writeBackWhileWriting } from './writeback.js'

/**
 * Physical backup of the whole instance with pg_basebackup, tar format, compressed on the
 * server (lz4 by default; see docs/backup.md for the measurements behind that choice), WAL
 * streamed alongside (-X stream) so the backup is self-contained, and pg_basebackup's own
 * backup_manifest kept for pg_verifybackup.
 *
 * Layout of `<backupsDir>/<id>/`:
 *   base/base.tar.lz4   base/pg_wal.tar   base/backup_manifest   manifest.json
 * (each with `.mfenc` appended when encrypted).
 */
export interface EncryptionRequest {
  kek: Buffer
  secretName: string
}

export interface PhysicalBackupOptions {
  backupsDir: string
  conn: pg.ClientConfig
  bins: PgBinaries
  runAs?: OsUser | undefined
  compression?: Compression
  label?: string
  encryption?: EncryptionRequest | undefined
  onProgress?: OnProgress
  signal?: AbortSignal
  /** For tests: override the id (still must be unique). */
  id?: string
  /**
   * Object-store uploads of the files produced while pg_basebackup runs (base.tar*, stored
   * form: encrypted when encrypted), keyed by their path in the backup (`base/base.tar.lz4.mfenc`).
   * The local backup is written exactly as without it.
   */
  tee?: ((id: string, rel: string) => Tee | undefined) | undefined
}

export const PHYSICAL_SUBDIR = 'base'

/** The tars pg_basebackup writes strictly sequentially (base and tablespaces), compressed or not. */
const APPEND_ONLY = /^(base|\d+)\.tar(\.(lz4|zst|gz))?$/

function compressArgs(c: Compression): string[] {
  switch (c) {
    case 'lz4':
      return ['--compress=server-lz4']
    case 'zstd':
      return ['--compress=server-zstd']
    case 'gzip':
      return ['--compress=client-gzip']
    case 'none':
      return []
  }
}

interface PgManifest {
  'WAL-Ranges'?: Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>
  Files?: unknown[]
}

export async function createPhysicalBackup(o: PhysicalBackupOptions): Promise<BackupManifest> {
  const compression = o.compression ?? 'lz4'
  const id = o.id ?? newBackupId('physical')
  const label = o.label ?? `magflock ${id}`
  if (label.length > 100) throw BACKUP_INVALID({ message: 'The backup label is longer than 100 characters.' })
  const progress = o.onProgress ?? (() => undefined)
  const partial = await makeBackupDir(o.backupsDir, id, o.runAs)
  // The source facts are read while pg_basebackup runs (they are only needed for the
  // manifest): a source that cannot be read stops the tool, and the backup that never
  // really started leaves nothing behind.
  const sourceFailed = new AbortController()
  const infoP = withClient(o.conn, sourceInfo)
  infoP.catch((err: unknown) => sourceFailed.abort(err))
  const signal = o.signal ? AbortSignal.any([o.signal, sourceFailed.signal]) : sourceFailed.signal
  let following: ReturnType<typeof followWrites> | undefined
  let writeback: ReturnType<typeof writeBackWhileWriting> | undefined
  let followedP: Promise<Map<string, FileDigest>> | undefined
  try {
    const target = path.join(partial, PHYSICAL_SUBDIR)
    const startTime = new Date().toISOString()
    progress({ phase: 'backup', message: `pg_basebackup (${compression}) started`, bytesDone: 0, fraction: 0 })
    let encryption: EncryptionInfo | null = null
    let dataKey: Buffer | undefined
    if (o.encryption) {
      dataKey = newDataKey()
      encryption = {
        algorithm: 'aes-256-gcm-frames-v1',
        keyId: keyIdOf(o.encryption.kek),
        secretName: o.encryption.secretName,
        wrappedKey: wrapKey(o.encryption.kek, dataKey, id),
        frameSize: FRAME_SIZE,
      }
    }
    // base.tar* (and tablespace tars) are written strictly sequentially: they are hashed — or
    // encrypted, the ciphertext hashed — as they grow. pg_wal.tar is not (its tar headers are
    // rewritten when a segment closes), nor is backup_manifest there before the end: after.
    const key = dataKey
    following = followWrites(
      target,
      (n) => APPEND_ONLY.test(n),
      (n) => (key ? encryptSink(path.join(target, n + ENCRYPTED_SUFFIX), key, o.tee?.(id, `${PHYSICAL_SUBDIR}/${n}${ENCRYPTED_SUFFIX}`)) : hashSink(o.tee?.(id, `${PHYSICAL_SUBDIR}/${n}`))),
    )
    // --no-sync: describeFiles fsyncs every file once, alongside its hash; most of what those
    // fsyncs would write is written back while the copy runs (writeback.ts).
    writeback = writeBackWhileWriting(target)
    await runTool(
      o.bins.tool('pg_basebackup'),
      ['-D', target, '-Ft', '-X', 'stream', '-c', 'fast', '-P', '--no-sync', '-l', label, '--no-password', ...compressArgs(compression)],
      {
        runAs: o.runAs,
        env: pgEnv(o.conn),
        secrets: secretsOf(o.conn),
        signal,
        onLine: (line) => {
          // "123456/794000 kB (15%), 0/1 tablespace"
          const m = line.match(/^\s*(\d+)\/(\d+) kB \((\d+)%\)/)
          if (m) {
            const done = Number(m[1]) * 1024
            const total = Math.max(Number(m[2]) * 1024, done)
            progress({ phase: 'backup', message: `copied ${Math.round(done / 1048576)} of ${Math.round(total / 1048576)} MiB`, bytesDone: done, bytesTotal: total, fraction: Math.min(1, done / total) })
          }
        },
      },
    )
    const stopTime = new Date().toISOString()
    // What is left to read of base.tar is hashed (or encrypted) while the other files are
    // checked, hashed and fsynced.
    followedP = following.finish()
    followedP.catch(() => undefined) // awaited below (or in the catch block)
    const writtenBack = writeback.stop()
    // Exit 0 is necessary, not sufficient: the files must be there and the manifest must parse.
    const names = await fsp.readdir(target)
    const baseTar = names.find((n) => APPEND_ONLY.test(n) && n.startsWith('base.'))
    if (!baseTar || !names.includes('backup_manifest')) {
      throw BACKUP_TOOL_FAILED({ tool: 'pg_basebackup', exit: 'exit 0', stderr: `incomplete output: found ${names.join(', ') || 'nothing'}` })
    }
    const st = await fsp.stat(path.join(target, baseTar))
    if (st.size === 0) throw BACKUP_TOOL_FAILED({ tool: 'pg_basebackup', exit: 'exit 0', stderr: `${baseTar} is empty` })
    const pgm = JSON.parse(await fsp.readFile(path.join(target, 'backup_manifest'), 'utf8')) as PgManifest
    const range = pgm['WAL-Ranges']?.[0]
    if (!range) throw BACKUP_TOOL_FAILED({ tool: 'pg_basebackup', exit: 'exit 0', stderr: 'backup_manifest has no WAL range' })

    const followed = followedP
    const known = new Map<string, Promise<FileDigest | undefined>>()
    if (dataKey) {
      progress({ phase: 'encrypt', message: 'encrypting the rest' })
      const k = dataKey
      // Each plaintext file ends up as its ciphertext only: written alongside while followed,
      // else encrypted now (pg_wal.tar and backup_manifest while base.tar's tail is read).
      await allOrFirstError(
        names
          .filter((n) => !n.endsWith(ENCRYPTED_SUFFIX))
          .map(async (n) => {
            const ready = APPEND_ONLY.test(n) ? (await followed).get(n) : undefined
            if (ready) {
              await fsp.rm(path.join(target, n)) // its ciphertext was written alongside
              known.set(`${PHYSICAL_SUBDIR}/${n}${ENCRYPTED_SUFFIX}`, Promise.resolve(ready))
            } else {
              await fsp.rm(path.join(target, n + ENCRYPTED_SUFFIX), { force: true })
              const r = await encryptFileInPlace(path.join(target, n), k)
              known.set(`${PHYSICAL_SUBDIR}/${path.basename(r.path)}`, Promise.resolve(r))
            }
          }),
      )
    } else {
      for (const n of names) if (APPEND_ONLY.test(n)) known.set(`${PHYSICAL_SUBDIR}/${n}`, followed.then((m) => m.get(n)))
    }
    progress({ phase: 'manifest', message: 'hashing files' })
    const [files, info] = await Promise.all([describeFiles(partial, undefined, known), infoP, writtenBack, followed])
    const manifest: BackupManifest = {
      formatVersion: 1,
      id,
      type: 'physical',
      label,
      format: 'tar',
      startLsn: range['Start-LSN'],
      stopLsn: range['End-LSN'],
      startTime,
      stopTime,
      timeline: range.Timeline,
      pgVersion: info.pgVersion,
      systemIdentifier: info.systemIdentifier,
      databases: info.databases,
      compression,
      encryption,
      tool: `pg_basebackup ${o.bins.version}`,
      sourceBytes: info.totalBytes,
      totalBytes: files.reduce((s, f) => s + f.size, 0),
      files,
    }
    await completeBackup(o.backupsDir, partial, manifest)
    progress({ phase: 'done', message: `backup ${id} complete`, fraction: 1, bytesDone: info.totalBytes, bytesTotal: info.totalBytes })
    return manifest
  } catch (err) {
    await followedP?.catch(() => undefined)
    await following?.abort()
    await writeback?.stop()
    const sourceErr = await infoP.then(
      () => undefined,
      (e: unknown) => e ?? new Error('the source could not be read'),
    )
    if (sourceErr !== undefined) {
      // (maxRetries: pg_basebackup's WAL-streaming child may still be closing its file.)
      await fsp.rm(partial, { recursive: true, force: true, maxRetries: 5 })
      throw sourceErr
    }
    if (isNoSpace(err)) throw await noSpaceFailure(partial, o.backupsDir, (await infoP).totalBytes, err)
    await failBackup(partial, err instanceof Error ? err.message : String(err))
    throw err
  }
}
