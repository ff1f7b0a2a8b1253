import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { BACKUP_INVALID } from './errors.js'
import { cleanupIncomplete, compareBackups, listBackups, type BackupManifest, type IncompleteBackup } from './manifest.js'
import { listArchive, segmentName, segmentNo, segmentsBefore } from './wal.js'

/**
 * Retention. `planPrune` is pure and table-tested; `pruneBackups` applies it.
 *
 * Rules, each designed against a known way retention goes wrong:
 *  - order by stop LSN / stop time, never by directory name;
 *  - policies apply per series (physical; logical per database), so a burst of logical
 *    dumps never pushes the last physical backup out;
 *  - the newest complete backup of every series is always kept: expiry happens only after a
 *    newer backup succeeded;
 *  - WAL is removed only below the start of the OLDEST KEPT physical backup; with no kept
 *    physical backup, no WAL is removed.
 */
export interface PrunePolicy {
  keepLast?: number | undefined
  keepDaily?: number | undefined
  keepWeekly?: number | undefined
}

export interface PrunePlan {
  keep: Array<{ id: string; reasons: string[] }>
  remove: Array<{ id: string; stopTime: string }>
  /** WAL segments below this one are not needed by any kept backup (undefined = keep all). */
  walKeepFrom: string | undefined
}

function series(m: BackupManifest): string {
  return m.type === 'physical' ? 'physical' : `logical:${m.databases[0] ?? ''}`
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
  const day = t.getUTCDay() || 7
  t.setUTCDate(t.getUTCDate() + 4 - day)
  const y0 = new Date(Date.UTC(t.getUTCFullYear(), 0, 1))
  const w = Math.ceil(((t.getTime() - y0.getTime()) / 86_400_000 + 1) / 7)
  return `${t.getUTCFullYear()}-W${w}`
}

export function planPrune(backups: BackupManifest[], policy: PrunePolicy): PrunePlan {
  const { keepLast, keepDaily, keepWeekly } = policy
  for (const [k, v] of Object.entries(policy)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw BACKUP_INVALID({ message: `--${k} must be a whole number ≥ 0.` })
  }
  if (keepLast === undefined && keepDaily === undefined && keepWeekly === undefined) {
    throw BACKUP_INVALID({ message: 'Say what to keep: --keep-last N, --keep-daily D and/or --keep-weekly W.' })
  }
  const reasons = new Map<string, string[]>()
  const add = (id: string, r: string) => reasons.set(id, [...(reasons.get(id) ?? []), r])
  const groups = new Map<string, BackupManifest[]>()
  for (const b of backups) groups.set(series(b), [...(groups.get(series(b)) ?? []), b])
  for (const [name, list] of groups) {
    const newestFirst = [...list].sort(compareBackups).reverse()
    if (newestFirst[0]) add(newestFirst[0].id, `newest of ${name}`)
    if (keepLast) newestFirst.slice(0, keepLast).forEach((b, i) => add(b.id, `last ${i + 1}/${keepLast}`))
    const bucket = (n: number | undefined, key: (d: Date) => string, label: string) => {
      if (!n) return
      const seen = new Set<string>()
      for (const b of newestFirst) {
        const k = key(new Date(b.stopTime))
        if (seen.has(k)) continue
        if (seen.size >= n) break
        seen.add(k)
        add(b.id, `${label} ${k}`)
      }
    }
    bucket(keepDaily, (d) => d.toISOString().slice(0, 10), 'daily')
    bucket(keepWeekly, isoWeek, 'weekly')
  }
  const sorted = [...backups].sort(compareBackups)
  const keep = sorted.filter((b) => reasons.has(b.id)).map((b) => ({ id: b.id, reasons: reasons.get(b.id) ?? [] }))
  const remove = sorted.filter((b) => !reasons.has(b.id)).map((b) => ({ id: b.id, stopTime: b.stopTime }))
  const keptPhysical = sorted.filter((b) => b.type === 'physical' && reasons.has(b.id))
  const oldest = keptPhysical[0]
  return { keep, remove, walKeepFrom: oldest ? segmentName(oldest.timeline, segmentNo(oldest.startLsn)) : undefined }
}

export interface PruneResult {
  dryRun: boolean
  kept: Array<{ id: string; reasons: string[] }>
  removed: string[]
  walRemoved: string[]
  leftoversRemoved: IncompleteBackup[]
}

export async function pruneBackups(o: { backupsDir: string; walDir?: string | undefined; policy: PrunePolicy; dryRun?: boolean }): Promise<PruneResult> {
  const dryRun = Boolean(o.dryRun)
  const { complete } = await listBackups(o.backupsDir)
  const plan = planPrune(complete, o.policy)
  const leftovers = await cleanupIncomplete(o.backupsDir, dryRun)
  let walRemoved: string[] = []
  if (o.walDir && plan.walKeepFrom) {
    // plan.keep is oldest first, so the first physical one bounds the WAL still needed.
    const byId = new Map(complete.map((b) => [b.id, b]))
    const oldestKept = plan.keep.map((k) => byId.get(k.id)).find((b) => b?.type === 'physical')
    if (oldestKept) {
      const victims = segmentsBefore(await listArchive(o.walDir), segmentNo(oldestKept.startLsn))
      walRemoved = victims.map((v) => v.name)
      if (!dryRun) for (const v of victims) await fsp.rm(path.join(o.walDir, v.name), { force: true })
    }
  }
  if (!dryRun) for (const r of plan.remove) await fsp.rm(path.join(o.backupsDir, r.id), { recursive: true, force: true })
  return { dryRun, kept: plan.keep, removed: plan.remove.map((r) => r.id), walRemoved, leftoversRemoved: leftovers }
}
