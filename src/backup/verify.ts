import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { OsUser } from '../platform/os-user.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { BACKUP_VERIFY_FAILED } from './errors.js'
import { listFiles, loadBackup, sha256File, type BackupManifest } from './manifest.js'
import { extractPhysical } from './extract.js'
import { openBackupKey } from './keys.js'
import { runTool, type OnProgress } from './tools.js'

export interface VerifyProblem {
  file: string
  reason: string
}

export interface VerifyResult {
  id: string
  ok: boolean
  filesChecked: number
  bytesChecked: number
  deep: boolean
  problems: VerifyProblem[]
}

/**
 * Re-hashes every file against manifest.json: a missing, extra, resized or altered file (one
 * flipped bit is enough) is reported by name. With `deep` on a physical backup, also extracts
 * it to a scratch dir and runs pg_verifybackup (needs the KEK when encrypted).
 */
export async function verifyBackup(o: {
  backupsDir: string
  id: string
  deep?: boolean
  bins?: PgBinaries
  runAs?: OsUser | undefined
  kek?: Buffer | undefined
  onProgress?: OnProgress
}): Promise<VerifyResult> {
  const { dir, manifest } = await loadBackup(o.backupsDir, o.id)
  const progress = o.onProgress ?? (() => undefined)
  const total = manifest.files.reduce((s, f) => s + f.size, 0)
  let done = 0
  let lastReport = 0
  const onBytes = (n: number) => {
    done += n
    if (done - lastReport > 64 << 20) {
      lastReport = done
      progress({ phase: 'verify', message: 'hashing', bytesDone: done, bytesTotal: total, fraction: total ? done / total : 1 })
    }
  }
  const problems: VerifyProblem[] = await checkLayout(dir, manifest)
  const bad = new Set(problems.map((p) => p.file))
  for (const f of manifest.files) {
    if (bad.has(f.path)) continue
    const h = await sha256File(path.join(dir, f.path), onBytes)
    if (h !== f.sha256) problems.push({ file: f.path, reason: 'sha256 does not match the manifest' })
  }

  const deep = Boolean(o.deep && manifest.type === 'physical' && problems.length === 0 && o.bins)
  if (deep && o.bins) {
    const { dataKey } = await openBackupKey(o.backupsDir, o.id, o.kek)
    const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'mf-verify-'))
    try {
      const data = path.join(scratch, 'data')
      progress({ phase: 'verify', message: 'extracting for pg_verifybackup' })
      await fsp.mkdir(data, { mode: 0o700 })
      if (o.runAs) {
        await fsp.chown(scratch, o.runAs.uid, o.runAs.gid)
        await fsp.chown(data, o.runAs.uid, o.runAs.gid)
      }
      await extractPhysical({ dir, manifest, dataKey, dataDir: data, runAs: o.runAs, withManifest: true, verify: false }) // hashed above
      progress({ phase: 'verify', message: 'pg_verifybackup' })
      try {
        await runTool(o.bins.tool('pg_verifybackup'), ['-q', '-m', path.join(data, 'backup_manifest'), data], { runAs: o.runAs })
      } catch (err) {
        problems.push({ file: 'base/backup_manifest', reason: `pg_verifybackup: ${(err as Error).message}` })
      }
    } finally {
      await fsp.rm(scratch, { recursive: true, force: true })
    }
  }
  progress({ phase: 'verify', message: problems.length ? `${problems.length} problem(s)` : 'all files match', bytesDone: done, bytesTotal: total, fraction: 1 })
  return { id: o.id, ok: problems.length === 0, filesChecked: manifest.files.length, bytesChecked: done, deep, problems }
}

/**
 * The cheap half of verification, no hashing: every manifest file present with its size, no
 * extra file. A restore runs this before writing anything and hashes while it extracts.
 */
export async function checkLayout(dir: string, manifest: BackupManifest): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = []
  const present = new Set(await listFiles(dir))
  for (const f of manifest.files) {
    if (!present.has(f.path)) {
      problems.push({ file: f.path, reason: 'missing' })
      continue
    }
    present.delete(f.path)
    const st = await fsp.stat(path.join(dir, f.path))
    if (st.size !== f.size) problems.push({ file: f.path, reason: `size ${st.size} != ${f.size} in the manifest` })
  }
  for (const extra of present) if (extra !== 'failed.json') problems.push({ file: extra, reason: 'not in the manifest' })
  return problems
}

/** checkLayout, throwing E_BACKUP_VERIFY_FAILED naming the first bad file. */
export async function assertLayout(dir: string, manifest: BackupManifest): Promise<void> {
  throwFirst(manifest.id, await checkLayout(dir, manifest))
}

function throwFirst(id: string, problems: VerifyProblem[]): void {
  const p = problems[0]
  if (p) throw BACKUP_VERIFY_FAILED({ id, file: p.file, reason: p.reason }, { details: { problems } })
}

/** Throws E_BACKUP_VERIFY_FAILED naming the first bad file. */
export async function assertVerified(backupsDir: string, id: string, onProgress?: OnProgress): Promise<void> {
  throwFirst(id, (await verifyBackup({ backupsDir, id, ...(onProgress ? { onProgress } : {}) })).problems)
}
