import { operatorRole } from '../../kernel/grants.js'
import path from 'node:path'
import * as dbApi from '../../api/db.js'
import type { Role } from '../../api/route.js'
import { POOLER_DISABLED, POOLER_READ_ONLY_DISABLED } from '../../pooler/errors.js'
import * as migApi from '../../api/migrations.js'
import { DB_REVEAL_DENIED } from '../../databases/errors.js'
import { validateName } from '../../databases/names.js'
import {
  createDatabase,
  databaseUrl,
  dropDatabase,
  listDatabases,
  type DatabaseDeps,
} from '../../databases/service.js'
import { INVALID_REQUEST, isMagflockError } from '../../errors/index.js'
import { assertMayTarget, jsPolicyFor, migrationConnection, platformDatabases, privilegeCheck, resolveMigrationsDir } from '../../migrations/access.js'
import { MIGRATE_LOCK_TIMEOUT } from '../../migrations/errors.js'
import { MigrationDirRegistry } from '../../migrations/registry.js'
import { migrationStatus, runMigrations } from '../../migrations/runner.js'
import { flockUrl } from '../../replication/manager.js'
import type { KernelServices } from '../../kernel/services.js'
import { handle, type DaemonRoute } from '../services.js'

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

/** Checks role and database, then finds the folder (src/migrations/access.ts). */
async function migrationTarget(k: KernelServices, role: Role, input: { database: string; dir?: string | undefined }) {
  const database = validateName(input.database, 'database')
  const cfg = k.config()
  assertMayTarget(database, role, platformDatabases(cfg.postgres.database))
  const registry = new MigrationDirRegistry(path.join(k.layout.root, 'migrations.json'))
  const where = await resolveMigrationsDir({ database, role, requested: input.dir, registry, projectDir: k.projectDir, configured: cfg.migrations.dir })
  return { database, registry, ...where }
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

export const dbRoutes: DaemonRoute[] = [
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
    if (input.reveal && operatorRole(ctx.actor, 'db.migrate') === 'viewer') throw DB_REVEAL_DENIED({ role: operatorRole(ctx.actor, 'db.migrate') })
    const r = await databaseUrl(deps(k), { ...input, superuserFallback: operatorRole(ctx.actor, 'db.migrate') === 'admin' })
    if (r.revealed && r.user !== r.owner) ctx.auditDetails.as = r.user
    if (input.readOnly && !input.pooled) throw INVALID_REQUEST({ message: 'readOnly needs pooled (the read-only pool is served by the pooler)' })
    if (input.pooled) {
      const pooler = k.config().pooler
      if (!pooler.enabled) throw POOLER_DISABLED({})
      if (input.readOnly && !pooler.readOnly.enabled) throw POOLER_READ_ONLY_DISABLED({})
      ctx.auditDetails.routing = input.readOnly ? 'pooled-read-only' : 'pooled'
      // A role (or database) created a moment ago must be in PgBouncer's files before the URL is used.
      await k.live.pooler?.refreshUsers()
      const db = input.readOnly ? `${input.name}.ro` : input.name
      return { ...r, host: pooler.host, port: pooler.port, url: r.url.replace(`@${r.host}:${r.port}/${input.name}`, `@${pooler.host}:${pooler.port}/${db}`) }
    }
    if (!input.role) return r
    ctx.auditDetails.routing = input.role
    const url = flockUrl({ members: k.instances.members(), user: r.user ?? r.owner, database: input.name, role: input.role, password: r.revealed ? r.password : undefined })
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
    ctx.auditDetails.database = input.database
    ctx.auditDetails.dryRun = input.dryRun
    if (input.dir !== undefined) ctx.auditDetails.requestedDir = input.dir.slice(0, 300)
    if (input.register && input.dir === undefined) throw INVALID_REQUEST({ message: 'register needs dir (the folder to register)' })
    const role = operatorRole(ctx.actor, 'db.migrate')
    const { database, dir, source, registry } = await migrationTarget(k, role, input)
    Object.assign(ctx.auditDetails, { dir, dirSource: source })
    // Extension hooks: a veto stops the migration before the lock is taken (E_HOOK_VETOED).
    if (!input.dryRun) await k.hooks.run('migrate.before', { database, dirSource: source })
    const lockTimeoutMs = (input.lockTimeoutSeconds ?? k.config().migrations.lockTimeoutSeconds) * 1000
    const started = Date.now()
    const check = privilegeCheck(database, role)
    const release = input.dryRun ? () => {} : await acquireMigrateLock(k, database, lockTimeoutMs, ctx.signal, (m) => ctx.progress({ phase: 'lock', message: m }))
    try {
      const res = await runMigrations({
        connection: await migrationConnection(deps(k), database, role),
        dir,
        dryRun: input.dryRun,
        js: jsPolicyFor(role),
        ...(check ? { assertConnection: check } : {}),
        lockTimeoutMs: Math.max(1000, lockTimeoutMs - (Date.now() - started)),
        onProgress: (ev) => ctx.progress(ev),
        signal: ctx.signal,
      })
      if (input.register) {
        await registry.register(database, dir, ctx.actor.name)
        ctx.auditDetails.registered = true
      }
      Object.assign(ctx.auditDetails, {
        result: 'ok',
        applied: res.applied.map((m) => m.file),
        ...(input.dryRun ? { pending: res.pending.map((m) => m.file) } : {}),
      })
      return { ...res, dirSource: source }
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

  handle(migApi.migrateStatus, async (input, ctx, k) => {
    let target: Awaited<ReturnType<typeof migrationTarget>>
    try {
      target = await migrationTarget(k, operatorRole(ctx.actor, 'db.migrate'), input)
    } catch (err) {
      // A read route is not audited, but a refused attempt to name a folder or reach a
      // platform database is: it is what a probing token looks like.
      if (isMagflockError(err) && err.errorClass === 'permission_denied') {
        await k.audit.append({
          actor: ctx.actor.name,
          role: operatorRole(ctx.actor, 'db.migrate'),
          action: migApi.migrateStatus.id,
          result: 'denied',
          details: { code: err.code, database: input.database, ...(input.dir !== undefined ? { dir: input.dir.slice(0, 300) } : {}) },
        })
      }
      throw err
    }
    const { database, dir, source } = target
    // The owner's login here too: a superuser reading tables a database owner controls is how
    // search_path tricks (CVE-2018-1058 style) run the owner's code as the superuser.
    const res = await migrationStatus({ connection: await migrationConnection(deps(k), database, operatorRole(ctx.actor, 'db.migrate')), dir })
    return { ...res, dirSource: source }
  }),
]
