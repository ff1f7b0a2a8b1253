import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import type { OsUser } from '../platform/os-user.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { CryptoFailure, ENCRYPTED_SUFFIX, FRAME_SIZE, keyIdOf, newDataKey, wrapKey } from './crypto.js'
import { BACKUP_INVALID, BACKUP_TARGET_EXISTS, BACKUP_TOOL_FAILED, BACKUP_VERIFY_FAILED } from './errors.js'
import { completeBackup, describeFiles, failBackup, listFiles, newBackupId, type BackupManifest, type Compression, type EncryptionInfo } from './manifest.js'
import type { EncryptionRequest } from './physical.js'
import { openBackupKey } from './keys.js'
import { databaseExists, quoteIdent, sourceInfo, withClient } from './sql.js'
import { decryptFile, dirBytes, encryptFileInPlace, pgEnv, runTool, secretsOf, startBackup, type OnProgress } from './tools.js'
import { assertLayout, assertVerified } from './verify.js'
import { isNoSpace, noSpaceFailure } from './space.js'

/**
 * Logical backup of ONE database: `pg_dump -Fd -j N` (directory format, parallel), restored
 * with `pg_restore -j N` into a new database, or over an existing one only with force.
 * PostgreSQL 15's pg_dump compresses only with gzip; from 16 on, lz4/zstd are passed through.
 */
export const LOGICAL_SUBDIR = 'dump'

export interface LogicalBackupOptions {
  backupsDir: string
  /** Connection to the server; `database` is the one dumped. */
  conn: pg.ClientConfig
  database: string
  bins: PgBinaries
  runAs?: OsUser | undefined
  jobs?: number
  compression?: Compression
  label?: string
  encryption?: EncryptionRequest | undefined
  onProgress?: OnProgress
  signal?: AbortSignal
}

function dumpCompression(bins: PgBinaries, wanted: Compression): { args: string[]; used: Compression } {
  if (wanted === 'none') return { args: ['-Z', '0'], used: 'none' }
  if (bins.major >= 16) return { args: [`--compress=${wanted}`], used: wanted }
  return { args: [], used: 'gzip' } // pg_dump 15: directory format compresses with gzip only
}

export async function createLogicalBackup(o: LogicalBackupOptions): Promise<BackupManifest> {
  if (!/^[^\0]{1,63}$/.test(o.database)) throw BACKUP_INVALID({ message: 'A database name is required for a logical backup.' })
  const id = newBackupId('logical')
  const progress = o.onProgress ?? (() => undefined)
  const conn = { ...o.conn, database: o.database }
  const { args: zargs, used } = dumpCompression(o.bins, o.compression ?? 'lz4')
  // The source facts are read while the backup directory is made (both before pg_dump).
  const [before, partial] = await startBackup(
    () =>
      withClient(conn, async (c) => {
        const info = await sourceInfo(c)
        const size = await c.query<{ s: string; t: string }>(
          `select pg_database_size(current_database())::text as s,
                  (select count(*) from pg_class where relkind in ('r','m','p') and relnamespace not in
                     (select oid from pg_namespace where nspname in ('pg_catalog','information_schema')))::text as t`,
        )
        return { info, bytes: Number(size.rows[0]?.s ?? 0), tables: Number(size.rows[0]?.t ?? 0) }
      }),
    o.backupsDir,
    id,
    o.runAs,
  )
  try {
    const target = path.join(partial, LOGICAL_SUBDIR)
    const startTime = new Date().toISOString()
    let tablesDone = 0
    progress({ phase: 'dump', message: `pg_dump of ${o.database} started`, current: 0, total: before.tables, bytesDone: 0, bytesTotal: before.bytes })
    const poll = setInterval(() => {
      void dirBytes(target).then((b) =>
        progress({ phase: 'dump', message: `dumped ${tablesDone}/${before.tables} tables`, current: tablesDone, total: before.tables, bytesDone: b, bytesTotal: before.bytes }),
      )
    }, 1000)
    try {
      // --no-sync: describeFiles fsyncs every file once, alongside its hash.
      await runTool(o.bins.tool('pg_dump'), ['-Fd', '-j', String(o.jobs ?? 2), '-f', target, '-v', '--no-sync', '--no-password', ...zargs], {
        runAs: o.runAs,
        env: pgEnv(conn, o.database),
        secrets: secretsOf(conn),
        ...(o.signal ? { signal: o.signal } : {}),
        onLine: (line) => {
          if (/finished item \d+ TABLE DATA/.test(line)) tablesDone++
        },
      })
    } finally {
      clearInterval(poll)
    }
    const stopP = withClient(conn, async (c) => (await c.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn ?? '0/0')
    stopP.catch(() => undefined) // awaited below, alongside the hashing
    const stopTime = new Date().toISOString()
    const names = await fsp.readdir(target).catch(() => [] as string[])
    if (!names.includes('toc.dat')) throw BACKUP_TOOL_FAILED({ tool: 'pg_dump', exit: 'exit 0', stderr: 'no toc.dat was written' })
    let encryption: EncryptionInfo | null = null
    const known = new Map<string, { size: number; sha256: string }>()
    if (o.encryption) {
      const dataKey = newDataKey()
      encryption = { algorithm: 'aes-256-gcm-frames-v1', keyId: keyIdOf(o.encryption.kek), secretName: o.encryption.secretName, wrappedKey: wrapKey(o.encryption.kek, dataKey, id), frameSize: FRAME_SIZE }
      for (const rel of await listFiles(target)) {
        const r = await encryptFileInPlace(path.join(target, rel), dataKey)
        known.set(`${LOGICAL_SUBDIR}/${rel}${ENCRYPTED_SUFFIX}`, r)
      }
    }
    progress({ phase: 'manifest', message: 'hashing files' })
    const [files, stop] = await Promise.all([describeFiles(partial, undefined, known), stopP])
    const manifest: BackupManifest = {
      formatVersion: 1,
      id,
      type: 'logical',
      label: o.label ?? `magflock ${id}`,
      format: 'directory',
      startLsn: before.info.currentLsn,
      stopLsn: stop,
      startTime,
      stopTime,
      timeline: before.info.timeline,
      pgVersion: before.info.pgVersion,
      systemIdentifier: before.info.systemIdentifier,
      databases: [o.database],
      compression: used,
      encryption,
      tool: `pg_dump ${o.bins.version}`,
      sourceBytes: before.bytes,
      totalBytes: files.reduce((s, f) => s + f.size, 0),
      files,
    }
    await completeBackup(o.backupsDir, partial, manifest)
    progress({ phase: 'done', message: `backup ${id} complete`, fraction: 1, current: before.tables, total: before.tables })
    return manifest
  } catch (err) {
    if (isNoSpace(err)) throw await noSpaceFailure(partial, o.backupsDir, before.bytes, err)
    await failBackup(partial, err instanceof Error ? err.message : String(err))
    throw err
  }
}

export interface LogicalRestoreOptions {
  backupsDir: string
  id: string
  /** Connection to the target server (any database; the target is created there). */
  conn: pg.ClientConfig
  /** Database to restore into; defaults to the dumped database's name. */
  targetDb?: string
  force?: boolean
  bins: PgBinaries
  runAs?: OsUser | undefined
  jobs?: number
  /** The KEK when the backup is encrypted. */
  kek?: Buffer | undefined
  onProgress?: OnProgress
  signal?: AbortSignal
}

export interface LogicalRestoreResult {
  id: string
  database: string
  replaced: boolean
}

export async function restoreLogical(o: LogicalRestoreOptions): Promise<LogicalRestoreResult> {
  const progress = o.onProgress ?? (() => undefined)
  // Key first, verification second, target third: each refusal happens before any write.
  const { dir, manifest, dataKey } = await openBackupKey(o.backupsDir, o.id, o.kek)
  if (manifest.type !== 'logical') throw BACKUP_INVALID({ message: `Backup ${o.id} is physical; restore it with --to-instance.` })
  const target = o.targetDb ?? manifest.databases[0] ?? 'restored'
  await assertLayout(dir, manifest)
  const exists = await withClient(o.conn, (c) => databaseExists(c, target))
  if (exists && !o.force) throw BACKUP_TARGET_EXISTS({ what: 'database', name: target })
  // Every file is hashed before the target database is touched: in one pass with decryption
  // when encrypted (below), on its own otherwise (pg_restore reads the files itself).
  if (!dataKey) await assertVerified(o.backupsDir, o.id, progress)

  let source = path.join(dir, LOGICAL_SUBDIR)
  let tmp: string | undefined
  try {
    if (dataKey) {
      tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'mf-restore-'))
      await fsp.chmod(tmp, 0o700)
      progress({ phase: 'decrypt', message: 'decrypting dump files' })
      const byPath = new Map(manifest.files.map((f) => [f.path, f]))
      for (const rel of await listFiles(source)) {
        const out = path.join(tmp, rel.slice(0, -ENCRYPTED_SUFFIX.length))
        const name = `${LOGICAL_SUBDIR}/${rel}`
        await fsp.mkdir(path.dirname(out), { recursive: true })
        const got = await decryptFile(path.join(source, rel), out, dataKey).catch((err: unknown) => {
          throw err instanceof CryptoFailure ? BACKUP_VERIFY_FAILED({ id: o.id, file: name, reason: err.message }) : err
        })
        if (got.sha256 !== byPath.get(name)?.sha256) throw BACKUP_VERIFY_FAILED({ id: o.id, file: name, reason: 'sha256 does not match the manifest' })
      }
      await chownRecursive(tmp, o.runAs)
      source = tmp
    }
    await withClient(o.conn, async (c) => {
      if (exists) await c.query(`drop database ${quoteIdent(target)} with (force)`)
      await c.query(`create database ${quoteIdent(target)} template template0`)
    })
    progress({ phase: 'restore', message: `pg_restore into ${target}`, current: 0, total: manifest.files.length })
    let items = 0
    await runTool(o.bins.tool('pg_restore'), ['-j', String(o.jobs ?? 2), '-d', target, '--exit-on-error', '-v', '--no-password', source], {
      runAs: o.runAs,
      env: pgEnv(o.conn, target),
      secrets: secretsOf(o.conn),
      ...(o.signal ? { signal: o.signal } : {}),
      onLine: (line) => {
        if (/finished item/.test(line)) {
          items++
          if (items % 10 === 0) progress({ phase: 'restore', message: `restored ${items} items`, current: items })
        }
      },
    })
    progress({ phase: 'done', message: `restored ${manifest.databases[0] ?? ''} into ${target}`, fraction: 1 })
    return { id: o.id, database: target, replaced: exists }
  } finally {
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true })
  }
}

async function chownRecursive(dir: string, runAs: OsUser | undefined): Promise<void> {
  if (!runAs) return
  await fsp.chown(dir, runAs.uid, runAs.gid)
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) await chownRecursive(p, runAs)
    else await fsp.chown(p, runAs.uid, runAs.gid)
  }
}
