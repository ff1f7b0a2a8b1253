import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { MIGRATIONS_DIR_MISSING, MIGRATION_FILE_INVALID } from './errors.js'

/**
 * Reads a migrations folder the way postgres-migrations 5.3.0 does, so MagFlock can check
 * drift and lint files before handing the folder to the library:
 *  - files ending in .sql or .js (any case) count; everything else is ignored;
 *  - the name is `<integer id>[-_]<name>.<ext>`; ids must run 1, 2, 3… (0 is the library's own
 *    "create migrations table" file);
 *  - the hash is sha1(fileName + sql), where sql is the file text, or what a .js file's
 *    `generateSql()` returns;
 *  - reading a folder never runs a .js file: its SQL (and so its hash) is only known once a
 *    caller evaluates it with a JsEvaluator (`db migrate` does, `status` and `--dry-run` never);
 *  - a file runs outside a transaction when its SQL contains the exact text
 *    `-- postgres-migrations disable-transaction` anywhere.
 */
export const DISABLE_TRANSACTION_MARKER = '-- postgres-migrations disable-transaction'

export interface MigrationFile {
  id: number
  /** Name as postgres-migrations records it (the part after the id). */
  name: string
  fileName: string
  path: string
  type: 'sql' | 'js'
  /** File text (for .js, the module source). */
  contents: string
  /** SQL that runs ('' for a .js file not evaluated). */
  sql: string
  /** sha1(fileName + sql) ('' for a .js file not evaluated). */
  hash: string
  transactional: boolean
  /**
   * A .js file whose generateSql() has not run: sql and hash are unknown, and `transactional`
   * is read from the module's source text.
   */
  unevaluated?: true
}

/** Produces the SQL of a .js migration (in-process for the CLI, a dropped-privilege child in the kernel). */
export type JsEvaluator = (file: MigrationFile) => Promise<string>

export interface FileProblem {
  fileName: string
  reason: string
}

const MIGRATION_FILE = /\.(sql|js)$/i

export function parseFileName(fileName: string): { id: number; name: string; type: 'sql' | 'js'; prefix: string } | undefined {
  // Same pattern as postgres-migrations' file-name-parser.
  const m = /^(-?\d+)([-_]?)(.*).(sql|js)$/i.exec(fileName)
  if (!m) return undefined
  const id = Number.parseInt(m[1]!, 10)
  if (Number.isNaN(id)) return undefined
  const name = m[3] === undefined || m[3] === '' ? fileName : m[3]
  return { id, name, type: m[4]!.toLowerCase() as 'sql' | 'js', prefix: m[1]! + m[2]! }
}

export function hashMigration(fileName: string, sql: string): string {
  return createHash('sha1').update(fileName + sql, 'utf8').digest('hex')
}

const requireJs = createRequire(import.meta.url)

/**
 * Loads a .js migration exactly as the library does (CommonJS require, ESM via require(esm)),
 * in this process. Only for the CLI's `--db-url` runs (the user's own code, as the user);
 * the kernel never calls it (src/migrations/js-child.ts runs it in a child instead).
 */
export function sqlFromJs(filePath: string): string {
  let mod: { generateSql?: unknown }
  try {
    mod = requireJs(filePath) as { generateSql?: unknown }
  } catch (err) {
    throw MIGRATION_FILE_INVALID({ file: path.basename(filePath), reason: `it could not be loaded (${(err as Error).message.split('\n')[0]})` }, { cause: err })
  }
  if (typeof mod.generateSql !== 'function') {
    throw MIGRATION_FILE_INVALID({ file: path.basename(filePath), reason: 'it does not export a generateSql() function' })
  }
  const sql: unknown = (mod.generateSql as () => unknown)()
  if (typeof sql !== 'string') {
    throw MIGRATION_FILE_INVALID({ file: path.basename(filePath), reason: 'generateSql() must return a string' })
  }
  return sql
}

export interface LoadedFolder {
  dir: string
  files: MigrationFile[]
  /** Files the library would refuse (bad names, duplicate or reserved ids). */
  problems: FileProblem[]
}

export async function loadMigrationFolder(dir: string): Promise<LoadedFolder> {
  const abs = path.resolve(dir)
  let names: string[]
  try {
    names = await fsp.readdir(abs)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw MIGRATIONS_DIR_MISSING({ dir: abs }, { cause: err })
    }
    throw err
  }
  const problems: FileProblem[] = []
  const candidates: Array<{ fileName: string; parsed: NonNullable<ReturnType<typeof parseFileName>> }> = []
  for (const fileName of names.filter((n) => MIGRATION_FILE.test(n)).sort()) {
    const parsed = parseFileName(fileName)
    if (!parsed) problems.push({ fileName, reason: 'the name does not start with a number (expected <number>_<name>.sql)' })
    else candidates.push({ fileName, parsed })
  }
  // Read in parallel (500 files: ~90 ms one by one, a fraction of that together).
  const texts = await Promise.all(candidates.map((c) => fsp.readFile(path.join(abs, c.fileName), 'utf8')))
  const files: MigrationFile[] = candidates.map(({ fileName, parsed }, i) => {
    const p = path.join(abs, fileName)
    const contents = texts[i]!
    const base = { id: parsed.id, name: parsed.name, fileName, path: p, type: parsed.type, contents }
    if (parsed.type === 'js') return { ...base, sql: '', hash: '', transactional: !contents.includes(DISABLE_TRANSACTION_MARKER), unevaluated: true as const }
    return { ...base, sql: contents, hash: hashMigration(fileName, contents), transactional: !contents.includes(DISABLE_TRANSACTION_MARKER) }
  })
  files.sort((a, b) => a.id - b.id || a.fileName.localeCompare(b.fileName))
  const seen = new Map<number, string>()
  for (const f of files) {
    if (f.id <= 0) problems.push({ fileName: f.fileName, reason: `id ${f.id} is reserved; numbering starts at 1` })
    const other = seen.get(f.id)
    if (other !== undefined) problems.push({ fileName: f.fileName, reason: `id ${f.id} is also used by ${other}` })
    else seen.set(f.id, f.fileName)
  }
  return { dir: abs, files, problems }
}

/** The same file with its SQL from `evaluate` (a .js file), or unchanged (a .sql file or one already evaluated). */
export async function evaluateFile(f: MigrationFile, evaluate: JsEvaluator): Promise<MigrationFile> {
  if (!f.unevaluated) return f
  const sql = await evaluate(f)
  if (typeof sql !== 'string') throw MIGRATION_FILE_INVALID({ file: f.fileName, reason: 'generateSql() must return a string' })
  const { unevaluated: _, ...rest } = f
  return { ...rest, sql, hash: hashMigration(f.fileName, sql), transactional: !sql.includes(DISABLE_TRANSACTION_MARKER) }
}

/** In-process evaluation (CLI `--db-url` only). */
export const inProcessJs: JsEvaluator = async (f) => sqlFromJs(f.path)
