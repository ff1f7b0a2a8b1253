import * as dbApi from '../../api/db.js'
import { POOLER_DISABLED } from '../../pooler/errors.js'
import { currentPooler } from '../../pooler/component.js'
import * as migApi from '../../api/migrations.js'
import { DB_REVEAL_DENIED } from '../../databases/errors.js'
import { validateName } from '../../databases/names.js'
import {
  createDatabase,
  databaseUrl,
  dropDatabase,
  listDatabases,
  ownerConnection,
  type DatabaseDeps,
} from '../../databases/service.js'
import { isMagflockError } from '../../errors/index.js'
import { MIGRATE_LOCK_TIMEOUT } from '../../migrations/errors.js'
import { migrationStatus, runMigrations } from '../../migrations/runner.js'
import { flockUrl } from '../../replication/manager.js'
import { handle, type BoundRoute, type KernelServices } from '../services.js'

/**
 * Databases and migrations of the flock's primary. Handlers hold `db:<name>` in the
 * kernel's operation locks while they change a database, so `db drop` refuses while a
 * migration (or a backup, which takes the same resource) runs. Across processes the
 * migration's advisory lock in Postgres does the same (see src/migrations/lock.ts).
 */
function deps(k: KernelServices): DatabaseDeps {
  const p = k.instances.primary()
  return {
    superuser: (db) => p.connection(db),
    secrets: k.secrets,
    host: p.host,
    port: p.port,
    protectedNames: [k.config().postgres.database],
  }
}

/**
 * `db:<name>` for a migration. Another migration through the kernel holds it: wait for it
 * like for the advisory lock (so parallel CI jobs queue instead of failing); a drop or a
 * backup holds it: refuse at once with E_BUSY.
 */
async function acquireMigrateLock(
  k: KernelServices,
  database: string,
  timeoutMs: number,
  signal: AbortSignal,
  tell: (msg: string) => void,
): Promise<() => void> {
  const deadline = Date.now() + timeoutMs
  let told = false
  for (;;) {
    try {
      return k.locks.acquire(`db:${database}`, 'migrate')
    } catch (err) {
      const holder = k.locks.holder(`db:${database}`)
      if (holder !== 'migrate') throw err
      if (Date.now() >= deadline || signal.aborted) {
        throw MIGRATE_LOCK_TIMEOUT({ database, seconds: Math.round(timeoutMs / 100) / 10, holder: 'another `magflock db migrate` through this kernel' }, { cause: err })
      }
      if (!told) {
        told = true
        tell('waiting for another migration of this database (through the kernel) to finish')
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

export const dbRoutes: BoundRoute[] = [
  handle(dbApi.dbCreate, async (input, ctx, k) => {
    ctx.auditDetails.database = input.name
    const release = k.locks.acquire(`db:${validateName(input.name, 'database')}`, 'create')
    try {
      const res = await createDatabase(deps(k), input)
      Object.assign(ctx.auditDetails, { owner: res.owner, created: res.created, roleCreated: res.roleCreated })
      return res
    } finally {
      release()
    }
  }),

  handle(dbApi.dbList, async (_input, _ctx, k) => ({ databases: await listDatabases(deps(k)) })),

  handle(dbApi.dbUrl, async (input, ctx, k) => {
    Object.assign(ctx.auditDetails, { database: input.name, revealed: input.reveal, purpose: input.purpose })
    if (input.reveal && ctx.actor.role === 'viewer') throw DB_REVEAL_DENIED({ role: ctx.actor.role })
    const r = await databaseUrl(deps(k), input)
    if (input.pooled) {
      const pooler = k.config().pooler
      if (!pooler.enabled) throw POOLER_DISABLED({})
      ctx.auditDetails.routing = 'pooled'
      // A role created a moment ago must be in PgBouncer's userlist before the URL is used.
      await currentPooler()?.refreshUsers()
      return { ...r, host: pooler.host, port: pooler.port, url: r.url.replace(`@${r.host}:${r.port}/`, `@${pooler.host}:${pooler.port}/`) }
    }
    if (!input.role) return r
    ctx.auditDetails.routing = input.role
    const url = flockUrl({ members: k.instances.members(), user: r.owner, database: input.name, role: input.role, password: r.revealed ? r.password : undefined })
    return { ...r, url }
  }),

  handle(dbApi.dbDrop, async (input, ctx, k) => {
    ctx.auditDetails.database = input.name
    const release = k.locks.acquire(`db:${validateName(input.name, 'database')}`, 'drop')
    try {
      const res = await dropDatabase(deps(k), input)
      Object.assign(ctx.auditDetails, { roleDropped: res.roleDropped })
      return res
    } finally {
      release()
    }
  }),

  handle(migApi.migrate, async (input, ctx, k) => {
    const database = validateName(input.database, 'database')
    Object.assign(ctx.auditDetails, { database, dir: input.dir, dryRun: input.dryRun })
    const lockTimeoutMs = (input.lockTimeoutSeconds ?? k.config().migrations.lockTimeoutSeconds) * 1000
    const started = Date.now()
    const release = input.dryRun ? () => {} : await acquireMigrateLock(k, database, lockTimeoutMs, ctx.signal, (m) => ctx.progress({ phase: 'lock', message: m }))
    try {
      const res = await runMigrations({
        connection: await ownerConnection(deps(k), database),
        dir: input.dir,
        dryRun: input.dryRun,
        lockTimeoutMs: Math.max(1000, lockTimeoutMs - (Date.now() - started)),
        onProgress: (ev) => ctx.progress(ev),
        signal: ctx.signal,
      })
      Object.assign(ctx.auditDetails, {
        result: 'ok',
        applied: res.applied.map((m) => m.file),
        ...(input.dryRun ? { pending: res.pending.map((m) => m.file) } : {}),
      })
      return res
    } catch (err) {
      Object.assign(ctx.auditDetails, {
        result: 'error',
        error: isMagflockError(err) ? err.code : 'E_INTERNAL',
        applied: ((isMagflockError(err) ? err.details?.applied : undefined) as Array<{ file: string }> | undefined)?.map((m) => m.file) ?? [],
        ...(isMagflockError(err) && err.details?.file ? { failedFile: err.details.file } : {}),
      })
      throw err
    } finally {
      release()
    }
  }),

  handle(migApi.migrateStatus, async (input, _ctx, k) => {
    const database = validateName(input.database, 'database')
    return migrationStatus({ connection: await ownerConnection(deps(k), database), dir: input.dir })
  }),
]
