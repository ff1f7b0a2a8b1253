import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { loadKek } from '../keys.js'
import type { BackupReader } from '../extract.js'
import { loadBackup, MANIFEST_FILE, type BackupManifest } from '../manifest.js'
import { writeJsonAtomic } from '../../platform/fs.js'
import { planPrune, type PrunePolicy } from '../retention.js'
import { kekFor, prune, restore, summarize, type BackupDeps, type RestoreDeps, type RestoreInput, type RestoreOutput } from '../service.js'
import type { OnProgress } from '../tools.js'
import { parseSegmentName, segmentNo } from '../wal.js'
import { verifyBackup, type VerifyResult } from '../verify.js'
import { assertRemoteLayout, cleanupRemote, fetchBackup, remoteReader, listRemote, loadRemoteBackup, removeRemoteBackup } from './backups.js'
import { LOCAL_REPOSITORY, type RetentionPolicyConfig } from '../../config/repository.js'
import { openRemotes, openRepository, remoteConfigs, resolveRepository } from './index.js'
import { recoverUploads, type RecoveredUpload } from './push.js'
import { openKeyOf } from './keycheck.js'
import type { S3Repository } from './s3.js'
import { fetchWal, listRemoteWal, WAL_PREFIX } from './wal.js'
import { RemoteWalServer } from './wal-serve.js'

/**
 * The `--repo NAME` side of the backup service: list, verify, restore and prune against an
 * object-store repository, and retention applied per repository after a scheduled backup.
 * `local` (or no --repo) is the state directory and goes through ../service.ts unchanged.
 */
async function withRepo<T>(k: BackupDeps, name: string, fn: (r: S3Repository) => Promise<T>): Promise<T> {
  const repo = await resolveRepository(k, name)
  if (!repo) throw new Error('local repository has no remote client')
  try {
    return await fn(repo)
  } finally {
    repo.destroy()
  }
}

export async function listRepo(k: BackupDeps, name: string) {
  return withRepo(k, name, async (r) => {
    const l = await listRemote(r)
    return { repository: name, backups: l.complete.map(summarize), incomplete: l.incomplete.map((i) => ({ id: i.id, state: i.state, reason: i.reason })) }
  })
}

/**
 * Re-hashes every object of a remote backup against its manifest (all problems, by name). Deep
 * (physical): also reads it into a scratch dir and runs the local deep check (pg_verifybackup).
 */
export async function verifyRepo(k: BackupDeps, name: string, id: string, deep: boolean, onProgress?: OnProgress): Promise<VerifyResult> {
  return withRepo(k, name, async (r) => {
    const shallow = await fetchBackup(r, id, undefined, onProgress)
    const base: VerifyResult = { id, ok: shallow.problems.length === 0, filesChecked: shallow.manifest.files.length, bytesChecked: shallow.bytes, deep: false, problems: shallow.problems }
    if (!deep || !base.ok || shallow.manifest.type !== 'physical') return base
    const kek = await kekFor(k, shallow.manifest)
    if (shallow.manifest.encryption && !kek) return base
    const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'mf-repo-verify-'))
    try {
      await fetchBackup(r, id, scratch, onProgress)
      const v = await verifyBackup({ backupsDir: scratch, id, deep: true, bins: k.bins, runAs: k.runAs, kek, ...(onProgress ? { onProgress } : {}) })
      return { ...v, bytesChecked: base.bytesChecked + v.bytesChecked }
    } finally {
      await fsp.rm(scratch, { recursive: true, force: true })
    }
  })
}

/**
 * Restore from an object store (the disaster-recovery path). Into a new instance the objects
 * stream from the repository into extraction (remoteReader), hashed as they go: a damaged one
 * fails the extraction naming it and the new instance is removed. A restore that replaces
 * data first reads the backup into `<state>/tmp/repo-<random>/` with every object re-hashed (a
 * damaged one refuses the restore before anything is touched). The normal restore runs from
 * there (only the manifest is staged when streaming). The WAL
 * a point-in-time target needs is served on demand (wal-serve.ts): Postgres's restore_command
 * asks the kernel for each file, read back from the first repository holding it, with the next
 * segments prefetched in parallel; the first ones download while the backup does. A damaged
 * WAL object stops recovery and is the error reported. The staging dir is removed in every
 * outcome.
 */
export async function restoreFromRepo(k: RestoreDeps, name: string, input: RestoreInput, onProgress?: OnProgress, signal?: AbortSignal): Promise<RestoreOutput> {
  return withRepo(k, name, async (r) => {
    const manifest = await loadRemoteBackup(r, input.id)
    // Wrong or missing key: refused before anything is downloaded.
    if (manifest.encryption) {
      const kek = await kekFor(k, manifest)
      openKeyOf(manifest, kek)
    }
    const staging = path.join(k.layout.root, 'tmp', `repo-${randomBytes(4).toString('hex')}`)
    const walDir = path.join(staging, 'wal')
    let others: S3Repository[] = []
    let server: RemoteWalServer | undefined
    try {
      await fsp.mkdir(staging, { recursive: true, mode: 0o711 })
      await fsp.mkdir(walDir, { recursive: true, mode: 0o700 })
      if (k.runAs) await fsp.chown(walDir, k.runAs.uid, k.runAs.gid)
      if ((input.targetTime || input.targetLsn) && manifest.type === 'physical' && manifest.systemIdentifier) {
        others = (await openRemotes(k)).filter((x) => x.name !== r.name)
        server = await RemoteWalServer.start({
          repos: [r, ...others],
          sysid: manifest.systemIdentifier,
          fromSegNo: segmentNo(manifest.startLsn),
          timeline: manifest.timeline,
          spoolDir: walDir,
          getKek: (s) => loadKek((n) => k.secrets.get(n), s),
          runAs: k.runAs,
        })
      }
      const backupsDir = path.join(staging, 'backups')
      let reader: BackupReader | undefined
      if (streams(k, input, manifest)) {
        // Into a new instance: straight from the repository into extraction (only the manifest
        // is staged); a damaged object fails extraction and the new instance is removed.
        await assertRemoteLayout(r, manifest)
        await fsp.mkdir(path.join(backupsDir, input.id), { recursive: true, mode: 0o700 })
        await writeJsonAtomic(path.join(backupsDir, input.id, MANIFEST_FILE), manifest)
        reader = remoteReader(r, manifest)
      } else {
        onProgress?.({ phase: 'download', message: `reading ${input.id} from repository ${name}` })
        await fetchBackup(r, input.id, backupsDir, onProgress, signal)
      }
      const remoteWal = server ? { restoreCommand: server.restoreCommand(), archive: server.archive() } : undefined
      try {
        return await restore(k, input, onProgress, signal, { backupsDir, walDir, remoteWal, reader })
      } catch (err) {
        // Recovery stopped on a damaged or unreadable WAL object: that object is the error.
        throw server?.failure ?? err
      }
    } finally {
      await server?.close()
      for (const x of others) x.destroy()
      await fsp.rm(staging, { recursive: true, force: true })
    }
  })
}

/**
 * Streamed (not staged) when the restore creates a new instance from a physical backup: there
 * is no existing data a damaged object could cost, so the objects are hashed while they are
 * extracted. Replacing data (in place, --to-db through a scratch copy) stages and re-hashes
 * the whole backup first, as before.
 */
function streams(k: RestoreDeps, input: RestoreInput, m: BackupManifest): boolean {
  if (m.type !== 'physical' || input.toDb || input.toInstance === undefined || input.force) return false
  return input.toInstance !== k.instances.primary().name
}

/**
 * A point-in-time restore from the local repository when the local WAL archive is only a
 * cache: the segments it no longer holds (from the backup's start on) are read back from the
 * object stores into `<state>/wal` first. Nothing to do without repositories or a target.
 */
export async function fillLocalWal(k: BackupDeps, input: RestoreInput, signal?: AbortSignal): Promise<string[]> {
  if (!(input.targetTime || input.targetLsn) || remoteConfigs(k).length === 0) return []
  const { manifest } = await loadBackup(k.layout.backupsDir, input.id)
  if (manifest.type !== 'physical' || !manifest.systemIdentifier) return []
  const repos = await openRemotes(k)
  try {
    return await fetchWal({ repos, sysid: manifest.systemIdentifier, fromSegNo: segmentNo(manifest.startLsn), destDir: k.layout.walDir, getKek: (s) => loadKek((n) => k.secrets.get(n), s), runAs: k.runAs, signal })
  } finally {
    for (const r of repos) r.destroy()
  }
}

export interface RepoPruneResult {
  repository: string
  dryRun: boolean
  kept: Array<{ id: string; reasons: string[] }>
  removed: string[]
  walRemoved: string[]
  leftoversRemoved: string[]
}

/**
 * Retention in an object store, with the same rules as the local one (retention.ts): per
 * series, newest always kept, and WAL removed only below the start segment of the oldest kept
 * physical backup of that cluster (system identifier); with none kept, no WAL goes.
 */
export async function pruneRepo(k: BackupDeps, name: string, policy: PrunePolicy, dryRun: boolean): Promise<RepoPruneResult> {
  return withRepo(k, name, async (r) => {
    const { complete } = await listRemote(r)
    const plan = planPrune(complete, policy)
    const leftovers = await cleanupRemote(r, dryRun)
    const byId = new Map(complete.map((b) => [b.id, b]))
    const walRemoved: string[] = []
    const keptPhysical = plan.keep.map((x) => byId.get(x.id)).filter((b) => b?.type === 'physical')
    // Per cluster: the oldest kept physical backup bounds the WAL still needed.
    const clusters = new Set(complete.map((b) => b.systemIdentifier).filter((s): s is string => Boolean(s)))
    for (const sysid of clusters) {
      const oldest = keptPhysical.find((b) => b?.systemIdentifier === sysid)
      if (!oldest) continue
      const from = segmentNo(oldest.startLsn)
      const victims = [...(await listRemoteWal(r, sysid)).keys()].filter((n) => {
        const p = parseSegmentName(n)
        return p !== undefined && p.segNo < from
      })
      if (!dryRun && victims.length) await r.deleteMany(victims.map((v) => `${WAL_PREFIX}${sysid}/${v}`))
      walRemoved.push(...victims)
    }
    if (!dryRun) for (const x of plan.remove) await removeRemoteBackup(r, x.id)
    return { repository: name, dryRun, kept: plan.keep, removed: plan.remove.map((x) => x.id), walRemoved, leftoversRemoved: leftovers }
  })
}

function policyOf(p: RetentionPolicyConfig | undefined): PrunePolicy | undefined {
  if (!p || (p.keepLast === undefined && p.keepDaily === undefined && p.keepWeekly === undefined)) return undefined
  return { keepLast: p.keepLast, keepDaily: p.keepDaily, keepWeekly: p.keepWeekly }
}

/**
 * Automatic retention after a successful scheduled backup: `backup.retention` for the local
 * repository, each repository's own `retention` (default: backup.retention) for the others.
 * A repository without a policy is left alone. Errors are collected, not thrown: a failed
 * prune never turns a successful backup into a failed one.
 */
export async function applyRetention(k: BackupDeps): Promise<Array<{ repository: string; removed: string[]; walRemoved: number; error?: string }>> {
  const cfg = k.config().backup
  const out: Array<{ repository: string; removed: string[]; walRemoved: number; error?: string }> = []
  const local = policyOf(cfg.retention)
  if (local) {
    try {
      const r = await prune(k, local, false)
      out.push({ repository: LOCAL_REPOSITORY, removed: r.removed, walRemoved: r.walRemoved.length })
    } catch (err) {
      out.push({ repository: LOCAL_REPOSITORY, removed: [], walRemoved: 0, error: (err as Error).message })
    }
  }
  for (const repo of remoteConfigs(k)) {
    const p = policyOf(repo.retention ?? cfg.retention)
    if (!p) continue
    try {
      const r = await pruneRepo(k, repo.name, p, false)
      out.push({ repository: repo.name, removed: r.removed, walRemoved: r.walRemoved.length })
    } catch (err) {
      out.push({ repository: repo.name, removed: [], walRemoved: 0, error: (err as Error).message })
    }
  }
  return out
}

/** At kernel start: the uploads a killed kernel left (push.ts `recoverUploads`). */
export async function recoverUploadsOf(k: BackupDeps): Promise<RecoveredUpload[]> {
  return recoverUploads(k.layout.backupsDir, async (name) => {
    const cfg = remoteConfigs(k).find((r) => r.name === name)
    return cfg ? openRepository(cfg, (n) => k.secrets.get(n)) : undefined
  })
}
