import { promises as fsp } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import pg from 'pg'
import { runMigration as libraryRunMigration } from 'postgres-migrations/dist/run-migration.js'
import type { ProgressEvent } from '../api/route.js'
import { isMagflockError } from '../errors/index.js'
import { checkDrift, pendingFiles, type AppliedRow, type DriftItem } from './drift.js'
import {
  DB_URL_INVALID,
  MIGRATE_CONNECT,
  MIGRATE_POOL_REJECTED,
  MIGRATIONS_TABLE_CONFLICT,
  MIGRATION_DRIFT,
  MIGRATION_FAILED,
  MIGRATION_INVALID_INDEX,
  MIGRATION_LINT,
} from './errors.js'
import { evaluateFile, hashMigration, inProcessJs, loadMigrationFolder, parseFileName, type JsEvaluator, type MigrationFile } from './files.js'
import { lintMigrations } from './lint.js'
import { acquireMigrationLock, describeHolder, releaseMigrationLock } from './lock.js'
import { lineColumn } from './sql-lexer.js'
import { appliedRows, invalidIndexes, migrationsTables } from './sql.js'

/**
 * MagFlock's migration runner: postgres-migrations 5.3.0 does the applying; everything
 * around it is a guard rail for a hazard measured in ../shared/anchors/migrations:
 *
 *  - a dedicated pg.Client per run, never a Pool (on a shared Pool the library's session
 *    lock, BEGIN and COMMIT land on different backends);
 *  - no `ensureDatabaseExists` (it creates the database before taking the lock and races);
 *    databases are created by src/databases;
 *  - the library's advisory lock taken first, with a deadline, naming the holder;
 *  - a drift check (edited, deleted, renumbered files) before anything runs;
 *  - a clear error when another relation named "migrations" is in the way;
 *  - lint of non-transactional files, and a check for INVALID indexes before and after;
 *  - a failing file reported with its line, column and Postgres' message.
 *
 * The same code runs in the CLI (`--db-url`) and in the kernel (`--db NAME`). The library's
 * own runMigration applies each file (its transaction and its row in `migrations`), but the
 * files it gets are the ones read and checked here: the library never reads the folder, so
 * it never `require()`s a .js file and nothing can change between the checks and the run.
 * `.js` files run only on an applying run, through `js` (see JsPolicy); status and dry runs
 * never run them.
 */
export type Connection = pg.ClientConfig | string
export type Progress = (ev: Omit<ProgressEvent, 'type'>) => void

export interface MigrationRef {
  id: number
  name: string
  file: string
  transactional: boolean
}

export interface AppliedMigration extends MigrationRef {
  durationMs: number
}

/**
 * What an applying run does with .js migrations: evaluate them (in-process in the CLI, the
 * default; a dropped-privilege child in the kernel, src/migrations/js-child.ts), or refuse a
 * pending one with the given error (a kernel caller whose role may not run code).
 */
export type JsPolicy = { evaluate: JsEvaluator } | { refuse: (file: MigrationFile) => Error }

export interface MigrateOptions {
  connection: Connection
  dir: string
  dryRun?: boolean
  js?: JsPolicy
  /** Runs on the migration's own connection before anything else (the kernel's privilege check). */
  assertConnection?: (client: pg.Client) => Promise<void>
  lockTimeoutMs?: number
  onProgress?: Progress
  signal?: AbortSignal | undefined
}

export interface MigrateResult {
  database: string
  dir: string
  dryRun: boolean
  /** Applied by this run (empty on a dry run). */
  applied: AppliedMigration[]
  /** What a dry run would apply (empty otherwise). */
  pending: MigrationRef[]
  alreadyApplied: number
  durationMs: number
}

export interface StatusOptions {
  connection: Connection
  dir: string
  assertConnection?: (client: pg.Client) => Promise<void>
}

export interface AppliedStatus {
  id: number
  name: string
  hash: string
  appliedAt: string | null
  file: string | null
}

export interface StatusResult {
  database: string
  dir: string
  applied: AppliedStatus[]
  pending: MigrationRef[]
  drift: DriftItem[]
  ok: boolean
}

export const APPLICATION_NAME = 'magflock-migrate'
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000

const ref = (f: MigrationFile): MigrationRef => ({ id: f.id, name: f.name, file: f.fileName, transactional: f.transactional })

/** Connection settings for a dedicated client; refuses a Pool or an already-built client. */
export function clientConfig(conn: Connection): pg.ClientConfig {
  if (conn instanceof pg.Pool || conn instanceof pg.Client || typeof (conn as { query?: unknown }).query === 'function') {
    throw MIGRATE_POOL_REJECTED()
  }
  if (typeof conn === 'string') {
    let u: URL
    try {
      u = new URL(conn)
    } catch {
      throw DB_URL_INVALID({ reason: 'it does not parse as a URL' })
    }
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw DB_URL_INVALID({ reason: `scheme "${u.protocol}" is not postgres:` })
    if (!u.pathname || u.pathname === '/') throw DB_URL_INVALID({ reason: 'it names no database (…/DATABASE)' })
    return { connectionString: conn, application_name: APPLICATION_NAME }
  }
  return { ...conn, application_name: conn.application_name ?? APPLICATION_NAME }
}

/** user@host:port/db, never the password. */
export function describeTarget(conn: Connection): string {
  if (typeof conn !== 'string' && conn.connectionString) return describeTarget(conn.connectionString)
  if (typeof conn === 'string') {
    try {
      const u = new URL(conn)
      return `${u.username ? decodeURIComponent(u.username) + '@' : ''}${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname}`
    } catch {
      return 'the given URL'
    }
  }
  return `${conn.user ?? ''}${conn.user ? '@' : ''}${conn.host ?? 'localhost'}:${conn.port ?? 5432}/${conn.database ?? ''}`
}

async function connect(conn: Connection): Promise<{ client: pg.Client; database: string }> {
  const client = new pg.Client(clientConfig(conn))
  // An idle client whose backend dies emits 'error'; without a listener that kills the process.
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    await client.end().catch(() => {})
    throw MIGRATE_CONNECT({ target: describeTarget(conn), reason: (err as Error).message }, { cause: err })
  }
  // If this process dies mid-statement (kill -9, CI job cancelled), have the backend notice
  // within a second and roll back, releasing the migration lock, instead of running on.
  // PostgreSQL 14+; older servers do not know the setting, and that is fine.
  await client.query("SELECT set_config('client_connection_check_interval', '1000', false)").catch(() => {})
  const r = await client.query<{ db: string }>('SELECT current_database() AS db')
  return { client, database: r.rows[0]!.db }
}

/** Resolves the "migrations" table, or throws when another relation of that name breaks the library. */
async function readApplied(client: pg.Client): Promise<AppliedRow[]> {
  const t = await client.query<{ schema: string; relkind: string; resolved: boolean | null; columns: string[] }>(migrationsTables())
  if (t.rows.length === 0) return []
  const mine = t.rows.find((r) => r.resolved)
  const list = t.rows.map((r) => `${r.schema}.migrations`).join(', ')
  if (mine) {
    if (mine.relkind !== 'r' && mine.relkind !== 'p') {
      throw MIGRATIONS_TABLE_CONFLICT({ tables: `${mine.schema}.migrations`, reason: `it is a ${relkindName(mine.relkind)}, not a table` })
    }
    const need = ['id', 'name', 'hash']
    if (!need.every((c) => mine.columns.includes(c))) {
      throw MIGRATIONS_TABLE_CONFLICT({
        tables: `${mine.schema}.migrations`,
        reason: `its columns are (${mine.columns.join(', ')}), not the migration log's (id, name, hash, executed_at)`,
      })
    }
    const rows = await client.query<{ id: number; name: string; hash: string; executed_at: string | null }>(appliedRows())
    return rows.rows.map((r) => ({ id: r.id, name: r.name, hash: r.hash, executedAt: r.executed_at }))
  }
  const tables = t.rows.filter((r) => r.relkind === 'r')
  if (tables.length > 0) {
    throw MIGRATIONS_TABLE_CONFLICT({
      tables: list,
      reason: 'it is not on the search_path, but postgres-migrations finds it in any schema and then fails to read it',
    })
  }
  return []
}

function relkindName(k: string): string {
  return ({ v: 'view', m: 'materialized view', f: 'foreign table', S: 'sequence', i: 'index', c: 'composite type' } as Record<string, string>)[k] ?? `relation of kind ${k}`
}

async function listInvalidIndexes(client: pg.Client): Promise<string[]> {
  const r = await client.query<{ name: string }>(invalidIndexes())
  return r.rows.map((x) => x.name)
}

function refuseOnProblems(database: string, files: Awaited<ReturnType<typeof loadMigrationFolder>>, applied: AppliedRow[]): MigrationFile[] {
  const drift = checkDrift(files.files, applied, files.problems)
  if (!drift.ok) {
    throw MIGRATION_DRIFT({ database, count: drift.items.length, first: drift.items[0]!.detail }, { details: { drift: drift.items } })
  }
  const pending = pendingFiles(files.files, applied)
  const lint = lintMigrations(pending)
  if (lint.length > 0) {
    throw MIGRATION_LINT({ file: lint[0]!.file, problem: lint[0]!.problem }, { details: { problems: lint } })
  }
  return pending
}

export async function runMigrations(opts: MigrateOptions): Promise<MigrateResult> {
  const started = Date.now()
  const progress: Progress = opts.onProgress ?? (() => {})
  const cfg = clientConfig(opts.connection)
  const js: JsPolicy = opts.js ?? { evaluate: inProcessJs }
  let folder = await loadMigrationFolder(opts.dir)
  if (!opts.dryRun && 'evaluate' in js) {
    const files: MigrationFile[] = []
    for (const f of folder.files) files.push(await evaluateFile(f, js.evaluate))
    folder = { ...folder, files }
  }
  const { client, database } = await connect(cfg)
  let locked = false
  try {
    await opts.assertConnection?.(client)
    if (!opts.dryRun) {
      progress({ phase: 'lock', message: `taking the migration lock on ${database}` })
      await acquireMigrationLock(client, {
        database,
        timeoutMs: opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
        signal: opts.signal,
        onWait: (h) => progress({ phase: 'lock', message: `waiting for the migration lock, held by ${describeHolder(h)}` }),
      })
      locked = true
    }
    const applied = await readApplied(client)
    const pending = refuseOnProblems(database, folder, applied)
    const alreadyApplied = applied.filter((r) => r.id > 0).length
    if (opts.dryRun) {
      // Listed, never evaluated: a dry run runs no code.
      return { database, dir: folder.dir, dryRun: true, applied: [], pending: pending.map(ref), alreadyApplied, durationMs: Date.now() - started }
    }
    if (pending.length === 0) {
      progress({ phase: 'done', message: `${database} is up to date (${alreadyApplied} applied)`, fraction: 1, current: 0, total: 0 })
      return { database, dir: folder.dir, dryRun: false, applied: [], pending: [], alreadyApplied, durationMs: Date.now() - started }
    }
    const notRun = pending.find((f) => f.unevaluated)
    if (notRun && 'refuse' in js) throw js.refuse(notRun)
    if (pending.some((f) => !f.transactional)) {
      const invalid = await listInvalidIndexes(client)
      if (invalid.length > 0) throw MIGRATION_INVALID_INDEX({ indexes: invalid.join(', '), when: 'before' }, { details: { indexes: invalid } })
    }
    const done = await applyWithLibrary(client, database, applied, pending, progress)
    const invalidAfter = await listInvalidIndexes(client)
    if (invalidAfter.length > 0 && pending.some((f) => !f.transactional)) {
      throw MIGRATION_INVALID_INDEX({ indexes: invalidAfter.join(', '), when: 'after' }, { details: { indexes: invalidAfter, applied: done } })
    }
    progress({ phase: 'done', message: `applied ${done.length} migration${done.length === 1 ? '' : 's'} to ${database}`, fraction: 1, current: done.length, total: pending.length })
    return { database, dir: folder.dir, dryRun: false, applied: done, pending: [], alreadyApplied, durationMs: Date.now() - started }
  } finally {
    if (locked) await releaseMigrationLock(client).catch(() => {})
    await client.end().catch(() => {})
  }
}

const requireLib = createRequire(import.meta.url)
let bootstrap: MigrationFile | undefined

/** The library's migration 0 (creates the `migrations` table), read from the library itself. */
async function bootstrapMigration(): Promise<MigrationFile> {
  if (bootstrap) return bootstrap
  const file = requireLib.resolve('postgres-migrations/dist/migrations/0_create-migrations-table.sql')
  const fileName = path.basename(file)
  const sql = await fsp.readFile(file, 'utf8')
  const parsed = parseFileName(fileName)!
  bootstrap = { id: parsed.id, name: parsed.name, fileName, path: file, type: 'sql', contents: sql, sql, hash: hashMigration(fileName, sql), transactional: true }
  return bootstrap
}

/**
 * Applies the checked pending files on the dedicated, locked client with the library's
 * runMigration, migration 0 first when the table is new (what the library's migrate() does,
 * minus reading the folder). The library's error loses Postgres' position and SQLSTATE, so
 * the client's own query errors are recorded on the way past.
 */
async function applyWithLibrary(client: pg.Client, database: string, applied: AppliedRow[], pending: MigrationFile[], progress: Progress): Promise<AppliedMigration[]> {
  const byId = new Map(pending.map((f) => [f.id, f]))
  const done: AppliedMigration[] = []
  let current: MigrationFile | undefined
  let currentStart = 0
  let lastError: (Error & Partial<pg.DatabaseError>) | undefined
  const total = pending.length
  const originalQuery = client.query.bind(client) as (...args: unknown[]) => unknown
  ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const p = originalQuery(...args)
    if (p && typeof (p as Promise<unknown>).then === 'function') {
      ;(p as Promise<unknown>).catch((err: Error) => {
        lastError ??= err as Error & Partial<pg.DatabaseError>
      })
    }
    return p
  }
  const logger = (msg: string) => {
    const m = /^(Starting|Finished) migration: (-?\d+) /.exec(msg)
    if (!m) return
    const f = byId.get(Number(m[2]))
    if (!f) return
    if (m[1] === 'Starting') {
      current = f
      currentStart = Date.now()
      lastError = undefined
    } else {
      const ms = Date.now() - currentStart
      done.push({ ...ref(f), durationMs: ms })
      current = undefined
      progress({ phase: 'apply', message: `applied ${f.fileName} (${ms} ms)`, current: done.length, total, fraction: done.length / total })
    }
  }
  const run = libraryRunMigration('migrations', client)
  const toRun = applied.some((r) => r.id === 0) ? pending : [await bootstrapMigration(), ...pending]
  try {
    for (const f of toRun) {
      const m = { id: f.id, name: f.name, contents: f.contents, fileName: f.fileName, hash: f.hash, sql: f.sql }
      logger(`Starting migration: ${f.id} ${f.name}`)
      await run(m)
      logger(`Finished migration: ${f.id} ${f.name}`)
    }
  } catch (err) {
    if (isMagflockError(err)) throw err
    const f = current
    const pgErr = lastError
    if (!f) {
      throw MIGRATE_CONNECT({ target: database, reason: (err as Error).message }, { cause: err })
    }
    let where = ''
    const details: Record<string, unknown> = { file: f.fileName, id: f.id, applied: done }
    if (pgErr?.position) {
      const pos = Number(pgErr.position)
      const lc = lineColumn(f.sql, pos - 1)
      where = `line ${lc.line}, column ${lc.column}${f.type === 'js' ? ' of the generated SQL' : ''}`
      Object.assign(details, { line: lc.line, column: lc.column, position: pos })
    }
    if (pgErr?.code) details.sqlstate = pgErr.code
    const pgMessage = pgErr?.message ?? (err as Error).message
    throw MIGRATION_FAILED(
      { file: f.fileName, where, pgMessage: pgErr?.code ? `${pgMessage} (SQLSTATE ${pgErr.code})` : pgMessage, transactional: f.transactional },
      { cause: err, details },
    )
  } finally {
    ;(client as unknown as { query: unknown }).query = originalQuery
  }
  return done
}

export async function migrationStatus(opts: StatusOptions): Promise<StatusResult> {
  const folder = await loadMigrationFolder(opts.dir)
  const { client, database } = await connect(clientConfig(opts.connection))
  try {
    await opts.assertConnection?.(client)
    const applied = await readApplied(client)
    const drift = checkDrift(folder.files, applied, folder.problems)
    const fileById = new Map(folder.files.map((f) => [f.id, f.fileName]))
    return {
      database,
      dir: folder.dir,
      applied: applied
        .filter((r) => r.id > 0)
        .map((r) => ({ id: r.id, name: r.name, hash: r.hash, appliedAt: r.executedAt, file: fileById.get(r.id) ?? null })),
      pending: pendingFiles(folder.files, applied).map(ref),
      drift: drift.items,
      ok: drift.ok,
    }
  } finally {
    await client.end().catch(() => {})
  }
}
