import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { z } from 'zod'
import { readJsonFile, writeJsonAtomic } from '../../platform/fs.js'
import { isProcessAliveSync } from '../../platform/pids.js'
import { loadBackup, MANIFEST_FILE, type BackupManifest } from '../manifest.js'
import type { OnProgress, Tee } from '../tools.js'
import { BACKUPS_PREFIX, pushBackup, removeRemoteBackup } from './backups.js'
import type { S3Repository } from './s3.js'

/**
 * Writing one backup to one object-store repository while it is being made, and cleaning up
 * after a writer that died.
 *
 * Streaming: the files pg_basebackup writes strictly sequentially (base.tar.lz4) are uploaded
 * as they are produced — the same bytes the local repository stores (ciphertext when
 * encrypted), teed from the follower that hashes/encrypts them — as a multipart upload with a
 * bounded number of parts in memory. Once the local backup is complete, `complete()` uploads
 * the other files (pg_wal.tar, backup_manifest: written at the end), re-uploads from the local
 * copy any streamed file whose upload failed or whose bytes do not match the manifest, lists
 * the repository to check every object and size, and only then writes manifest.json (the
 * completion protocol of backups.ts: nothing is listed that is not whole).
 *
 * Journal: before the first byte goes out, `<backups>/.uploads/<repo>.<id>.json` records the
 * writer's pid, and every multipart upload id as the server hands it out; it is removed once
 * the backup is stored (or cleaned up). A kernel killed mid-upload leaves it behind, and the
 * next kernel (`recoverUploads`, at boot) aborts those multipart uploads, deletes the partial
 * objects, and — when the local backup is complete — uploads it again from scratch. Only the
 * backups this state directory was writing are touched, never another writer's in the same
 * bucket.
 */
export const UPLOADS_DIR = '.uploads'

const JournalData = z.object({
  repo: z.string(),
  id: z.string(),
  pid: z.number(),
  uploads: z.array(z.object({ key: z.string(), uploadId: z.string() })),
})
type JournalData = z.infer<typeof JournalData>

export class UploadJournal {
  private writing: Promise<void> = Promise.resolve()

  private constructor(
    readonly file: string,
    private readonly data: JournalData,
  ) {}

  static async create(backupsDir: string, repo: string, id: string): Promise<UploadJournal> {
    const dir = path.join(backupsDir, UPLOADS_DIR)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    const j = new UploadJournal(path.join(dir, `${repo}.${id}.json`), { repo, id, pid: process.pid, uploads: [] })
    await writeJsonAtomic(j.file, j.data)
    return j
  }

  static async read(file: string): Promise<UploadJournal | undefined> {
    const d = await readJsonFile(file, (v) => JournalData.parse(v)).catch(() => undefined)
    return d ? new UploadJournal(file, d) : undefined
  }

  get repo(): string {
    return this.data.repo
  }
  get id(): string {
    return this.data.id
  }
  get pid(): number {
    return this.data.pid
  }
  get uploads(): ReadonlyArray<{ key: string; uploadId: string }> {
    return this.data.uploads
  }

  /** Records a multipart upload id (writes are serialized; a failed write is retried by the next). */
  addUpload(key: string, uploadId: string): Promise<void> {
    this.data.uploads.push({ key, uploadId })
    this.writing = this.writing.then(() => writeJsonAtomic(this.file, this.data)).catch(() => undefined)
    return this.writing
  }

  async remove(): Promise<void> {
    await this.writing
    await fsp.rm(this.file, { force: true })
  }
}

interface StreamedFile {
  ok: boolean
  size: number
  sha256: string
}

/** One backup on its way to one repository. */
export class RemotePush {
  private readonly streamed = new Map<string, StreamedFile>()
  private readonly uploads: Array<Promise<void>> = []

  private constructor(
    readonly repo: S3Repository,
    readonly id: string,
    private readonly journal: UploadJournal,
    private readonly signal: AbortSignal | undefined,
  ) {}

  static async begin(repo: S3Repository, backupsDir: string, id: string, signal?: AbortSignal): Promise<RemotePush> {
    return new RemotePush(repo, id, await UploadJournal.create(backupsDir, repo.name, id), signal)
  }

  /** A tee uploading the stored bytes of `rel` (a path in the backup) as they are produced. */
  stream(rel: string): Tee {
    const key = `${BACKUPS_PREFIX}${this.id}/${rel}`
    const body = new PassThrough({ highWaterMark: 1 << 20 })
    const h = createHash('sha256')
    let size = 0
    let broken = false
    const entry: StreamedFile = { ok: false, size: 0, sha256: '' }
    this.streamed.set(rel, entry)
    const done = this.repo.upload(key, body, {}, this.signal, (k, uploadId) => void this.journal.addUpload(k, uploadId))
    const settled = done.then(
      () => undefined,
      () => {
        broken = true // complete() uploads it again from the local copy
      },
    )
    this.uploads.push(settled)
    return {
      write: async (c) => {
        if (broken) return
        h.update(c)
        size += c.length
        if (!body.write(c)) await Promise.race([once(body, 'drain'), settled])
      },
      end: async () => {
        if (broken) return
        body.end()
        await settled
        if (!broken) Object.assign(entry, { ok: true, size, sha256: h.digest('hex') })
      },
      abort: async () => {
        broken = true
        entry.ok = false
        if (!body.destroyed) body.destroy(new Error('local file abandoned'))
        await settled
      },
    }
  }

  /**
   * The local backup is complete: upload what was not streamed (or not streamed whole), check
   * every object, write manifest.json last, drop the journal. On failure the partial upload is
   * removed (pushBackup does that) and the journal with it.
   */
  async complete(backupDir: string, m: BackupManifest, onProgress?: OnProgress): Promise<void> {
    await Promise.all(this.uploads)
    const whole = (f: BackupManifest['files'][number]) => {
      const s = this.streamed.get(f.path)
      return s?.ok === true && s.size === f.size && s.sha256 === f.sha256
    }
    try {
      await pushBackup(this.repo, backupDir, m, onProgress, this.signal, { skip: whole, onUploadId: (k, u) => void this.journal.addUpload(k, u) })
    } finally {
      // Stored, or removed by pushBackup: either way nothing is left for a later kernel.
      await this.journal.remove()
    }
  }

  /** The local backup failed: nothing of it may stay in the repository. */
  async abandon(): Promise<void> {
    await Promise.all(this.uploads)
    for (const u of this.journal.uploads) await this.repo.abortUpload(u.key, u.uploadId).catch(() => undefined)
    await removeRemoteBackup(this.repo, this.id).catch(() => undefined)
    await this.journal.remove()
  }
}

export interface RecoveredUpload {
  repository: string
  id: string
  /** removed: partial objects and uploads deleted; restarted: then stored again from the local copy; complete: it had been stored whole. */
  outcome: 'removed' | 'restarted' | 'complete'
  abortedUploads: number
  error?: string
}

/**
 * At kernel start: every journal a dead writer left. Its multipart uploads are aborted and its
 * objects deleted (manifest first, so it is never listed meanwhile); when the local backup is
 * complete it is uploaded again from scratch. A repository that cannot be reached keeps the
 * journal for the next start.
 */
export async function recoverUploads(
  backupsDir: string,
  open: (repo: string) => Promise<S3Repository | undefined>,
  onProgress?: OnProgress,
): Promise<RecoveredUpload[]> {
  const dir = path.join(backupsDir, UPLOADS_DIR)
  const names = await fsp.readdir(dir).catch(() => [] as string[])
  const out: RecoveredUpload[] = []
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    const j = await UploadJournal.read(path.join(dir, n))
    if (!j) {
      await fsp.rm(path.join(dir, n), { force: true })
      continue
    }
    if (j.pid === process.pid || isProcessAliveSync(j.pid)) continue // still being written
    const r: RecoveredUpload = { repository: j.repo, id: j.id, outcome: 'removed', abortedUploads: 0 }
    out.push(r)
    let repo: S3Repository | undefined
    try {
      repo = await open(j.repo)
      if (!repo) {
        // The repository is no longer configured: nothing we could clean.
        await j.remove()
        continue
      }
      const base = `${BACKUPS_PREFIX}${j.id}/`
      if (await repo.head(base + MANIFEST_FILE)) {
        // Killed after the manifest was stored: the backup is whole there.
        r.outcome = 'complete'
        for (const u of j.uploads) await repo.abortUpload(u.key, u.uploadId)
        await j.remove()
        continue
      }
      for (const u of j.uploads) {
        await repo.abortUpload(u.key, u.uploadId)
        r.abortedUploads++
      }
      await removeRemoteBackup(repo, j.id)
      const local = await loadBackup(backupsDir, j.id).catch(() => undefined)
      if (local) {
        await j.remove() // same file name as the new writer's journal
        const again = await RemotePush.begin(repo, backupsDir, j.id)
        await again.complete(local.dir, local.manifest, onProgress)
        r.outcome = 'restarted'
      } else {
        await j.remove()
      }
    } catch (err) {
      r.error = (err as Error).message
    } finally {
      repo?.destroy()
    }
  }
  return out
}

/** One tee feeding several uploads (every repository at once). */
export function fanOut(tees: Tee[]): Tee | undefined {
  if (tees.length === 0) return undefined
  if (tees.length === 1) return tees[0]
  return {
    write: async (c) => {
      await Promise.all(tees.map((t) => t.write(c)))
    },
    end: async () => {
      await Promise.all(tees.map((t) => t.end()))
    },
    abort: async () => {
      await Promise.all(tees.map((t) => t.abort()))
    },
  }
}

type RepoOpener = { name: string; open: () => Promise<S3Repository> }

/**
 * Starts one push per repository. A repository that cannot even be opened (a missing
 * credential) is a failure reported with the others after the local backup, as before.
 */
export async function beginPushes(backupsDir: string, id: string, repos: RepoOpener[], signal?: AbortSignal): Promise<{ pushes: RemotePush[]; failures: string[] }> {
  const pushes: RemotePush[] = []
  const failures: string[] = []
  for (const r of repos) {
    try {
      const repo = await r.open()
      try {
        pushes.push(await RemotePush.begin(repo, backupsDir, id, signal))
      } catch (err) {
        repo.destroy()
        throw err
      }
    } catch (err) {
      failures.push(`${r.name}: ${describe(err)}`)
    }
  }
  return { pushes, failures }
}

/** Finishes every push at once; returns the repositories that hold the backup, and the failures. */
export async function completePushes(pushes: RemotePush[], backupDir: string, m: BackupManifest, onProgress?: OnProgress): Promise<{ stored: string[]; failures: string[] }> {
  const results = await Promise.all(
    pushes.map(async (p) => {
      try {
        await p.complete(backupDir, m, onProgress)
        return { name: p.repo.name }
      } catch (err) {
        return { name: p.repo.name, failure: `${p.repo.name}: ${describe(err)}` }
      } finally {
        p.repo.destroy()
      }
    }),
  )
  // In configuration order, whichever finished first.
  return { stored: results.filter((r) => !r.failure).map((r) => r.name), failures: results.flatMap((r) => (r.failure ? [r.failure] : [])) }
}

export async function abandonPushes(pushes: RemotePush[]): Promise<void> {
  await Promise.all(
    pushes.map(async (p) => {
      await p.abandon().catch(() => undefined)
      p.repo.destroy()
    }),
  )
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string }
  return typeof e?.code === 'string' && e.code.startsWith('E_') ? `${e.code} ${e.message ?? ''}` : String((err as Error)?.message ?? err)
}
