import * as api from '../../api/backup.js'
import type { backupEventSchemas } from '../../backup/events.js'
import '../../backup/events.js'
import * as svc from '../../backup/service.js'
import * as repo from '../../backup/repository/service.js'
import { LOCAL_REPOSITORY } from '../../config/repository.js'
import { isMagflockError } from '../../errors/index.js'
import type { Progress } from '../../backup/tools.js'
import type { KernelServices, RequestContext } from '../../kernel/services.js'
import { handle, type DaemonRoute } from '../services.js'

/**
 * Backup routes: thin handlers over src/backup/service.ts. Progress is forwarded to the
 * caller (at most ~4 events a second so a fast copy does not flood the socket); the audit
 * record gets ids, types and targets, never key material.
 */
function throttled(ctx: RequestContext): (p: Progress) => void {
  let last = 0
  return (p) => {
    const now = Date.now()
    if (p.phase !== 'done' && p.fraction !== 1 && now - last < 250) return
    last = now
    ctx.progress(p)
  }
}

function publish(k: KernelServices, type: keyof typeof backupEventSchemas, payload: unknown): void {
  k.events.publish(type, payload)
}

function isRemote(name: string | undefined): name is string {
  return name !== undefined && name !== LOCAL_REPOSITORY
}

export const backupRoutes: DaemonRoute[] = [
  handle(api.backupCreate, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { type: input.type, database: input.db, encrypt: input.encrypt })
    try {
      const r = await svc.createBackup(k, input, throttled(ctx), ctx.signal)
      Object.assign(ctx.auditDetails, { id: r.id, bytes: r.sizeBytes, keyId: r.keyId, repositories: r.repositories, source: r.source })
      publish(k, 'backup.completed', { id: r.id, type: r.type, ...(input.db ? { database: input.db } : {}), bytes: r.sizeBytes, seconds: r.seconds, encrypted: r.encrypted, scheduled: false })
      return r
    } catch (err) {
      publish(k, 'backup.failed', { type: input.type, code: isMagflockError(err) ? err.code : 'E_INTERNAL', message: err instanceof Error ? err.message : String(err), scheduled: false })
      throw err
    }
  }),

  handle(api.backupList, async (input, _ctx, k) => (isRemote(input.repo) ? repo.listRepo(k, input.repo) : { repository: LOCAL_REPOSITORY, ...(await svc.listAll(k)) })),

  handle(api.backupVerify, async (input, ctx, k) => {
    if (isRemote(input.repo)) return repo.verifyRepo(k, input.repo, input.id, input.deep, throttled(ctx))
    return svc.verify(k, input.id, input.deep, throttled(ctx))
  }),

  handle(api.backupRestore, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { id: input.id, repo: input.repo ?? LOCAL_REPOSITORY, toInstance: input.toInstance, toDb: input.toDb, db: input.db, targetTime: input.targetTime, targetLsn: input.targetLsn, force: input.force })
    // No failover or switchover may start while a restore runs (and no restore during one).
    const release = k.locks.acquire('topology', 'backup restore')
    let r: Awaited<ReturnType<typeof svc.restore>>
    try {
      const deps = { ...k, flock: k.instances }
      if (isRemote(input.repo)) r = await repo.restoreFromRepo(deps, input.repo, input, throttled(ctx), ctx.signal)
      else {
        await repo.fillLocalWal(k, input, ctx.signal) // the local archive may be a trimmed cache
        r = await svc.restore(deps, input, throttled(ctx), ctx.signal)
      }
    } finally {
      release()
    }
    Object.assign(ctx.auditDetails, { target: r.target, port: r.port, role: r.role, previousDataDir: r.previousDataDir, sourceDb: r.sourceDb })
    publish(k, 'backup.restored', { id: r.id, target: r.target, pitr: r.pitr, seconds: r.seconds })
    return r
  }),

  handle(api.backupPrune, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { repo: input.repo ?? LOCAL_REPOSITORY, keepLast: input.keepLast, keepDaily: input.keepDaily, keepWeekly: input.keepWeekly, dryRun: input.dryRun })
    const policy = { keepLast: input.keepLast, keepDaily: input.keepDaily, keepWeekly: input.keepWeekly }
    const r = isRemote(input.repo) ? await repo.pruneRepo(k, input.repo, policy, input.dryRun) : { repository: LOCAL_REPOSITORY, ...(await svc.prune(k, policy, input.dryRun)) }
    Object.assign(ctx.auditDetails, { removed: r.removed, walRemoved: r.walRemoved.length, leftoversRemoved: r.leftoversRemoved })
    publish(k, 'backup.pruned', { removed: r.removed, walRemoved: r.walRemoved.length, dryRun: r.dryRun })
    return r
  }),

  handle(api.backupRekey, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { fromSecret: input.fromSecret, toSecret: input.toSecret })
    const r = await svc.rekey(k, input.fromSecret, input.toSecret)
    Object.assign(ctx.auditDetails, { newKeyId: r.newKeyId, rewrapped: r.rewrapped.length, skipped: r.skipped.length })
    return r
  }),
]
