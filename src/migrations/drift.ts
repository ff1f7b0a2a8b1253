import { hashMigration, type FileProblem, type MigrationFile } from './files.js'

/**
 * The drift check: compares the migration files with the rows postgres-migrations recorded
 * in the `migrations` table. The library itself only compares hashes of files that still
 * exist; it never notices an applied file that was deleted, and its "hashes don't match"
 * error does not say why. Pure: no I/O, table-tested in test/unit/migrations/drift.test.ts.
 */
export interface AppliedRow {
  id: number
  name: string
  hash: string
  executedAt: string | null
}

export type DriftKind = 'edited' | 'missing' | 'gap' | 'duplicate' | 'invalid-name' | 'out-of-order'

export interface DriftItem {
  kind: DriftKind
  id?: number
  file?: string
  /** One sentence: which file and what differs. */
  detail: string
  /** For `edited`: what changed, as far as the hash can tell. */
  cause?: 'line-endings' | 'renamed' | 'renamed-and-edited' | 'content'
  recordedHash?: string
  currentHash?: string
}

export interface DriftReport {
  ok: boolean
  items: DriftItem[]
}

/** The library's own bootstrap migration (creates the table); never a user file. */
export const INTERNAL_MIGRATION_ID = 0

export function checkDrift(files: MigrationFile[], applied: AppliedRow[], problems: FileProblem[] = []): DriftReport {
  const items: DriftItem[] = []
  for (const p of problems) {
    const dup = /also used by/.test(p.reason)
    items.push({ kind: dup ? 'duplicate' : 'invalid-name', file: p.fileName, detail: `${p.fileName}: ${p.reason}` })
  }
  const byId = new Map<number, MigrationFile>()
  for (const f of files) if (!byId.has(f.id)) byId.set(f.id, f)
  const appliedById = new Map<number, AppliedRow>()
  for (const r of applied) if (r.id !== INTERNAL_MIGRATION_ID) appliedById.set(r.id, r)

  for (const row of [...appliedById.values()].sort((a, b) => a.id - b.id)) {
    const f = byId.get(row.id)
    if (!f) {
      items.push({
        kind: 'missing',
        id: row.id,
        detail: `migration ${row.id} "${row.name}" was applied${row.executedAt ? ` on ${row.executedAt}` : ''} but no file numbered ${row.id} exists any more`,
        recordedHash: row.hash,
      })
      continue
    }
    if (f.unevaluated) {
      // A .js file whose generateSql() did not run (status, --dry-run, a role that may not run
      // code): its hash is unknown, so only its name can be compared.
      if (f.name === row.name) continue
      items.push({
        kind: 'edited',
        id: f.id,
        file: f.fileName,
        cause: 'renamed',
        detail: `${f.fileName}: the file was renamed from "${row.name}" to "${f.name}" (a .js file: its content is compared only when \`db migrate\` evaluates it)`,
        recordedHash: row.hash,
      })
      continue
    }
    if (f.hash === row.hash) continue
    const cause = editCause(f, row)
    const what: Record<typeof cause, string> = {
      'line-endings': 'only the line endings changed (CRLF vs LF, e.g. a Windows checkout or core.autocrlf); the SQL is the same',
      renamed: `the file was renamed from "${row.name}" to "${f.name}"; the content is the same`,
      'renamed-and-edited': `the file was renamed from "${row.name}" to "${f.name}" and its content changed since it was applied`,
      content: 'its content changed since it was applied',
    }
    items.push({
      kind: 'edited',
      id: f.id,
      file: f.fileName,
      cause,
      detail: `${f.fileName}: ${what[cause]} (hash ${row.hash.slice(0, 12)} applied, ${f.hash.slice(0, 12)} now)`,
      recordedHash: row.hash,
      currentHash: f.hash,
    })
  }

  const maxApplied = Math.max(0, ...appliedById.keys())
  for (const f of files) {
    if (f.id > 0 && f.id < maxApplied && !appliedById.has(f.id)) {
      items.push({
        kind: 'out-of-order',
        id: f.id,
        file: f.fileName,
        detail: `${f.fileName} is pending but migration ${maxApplied} is already applied; renumber it after ${maxApplied}`,
      })
    }
  }

  const maxId = Math.max(0, maxApplied, ...files.map((f) => f.id))
  const sorted = [...byId.values()].filter((f) => f.id > 0).sort((a, b) => a.id - b.id)
  for (let id = 1; id <= maxId; id++) {
    if (byId.has(id) || appliedById.has(id)) continue
    const before = [...sorted].reverse().find((f) => f.id < id)
    const after = sorted.find((f) => f.id > id)
    let end = id
    while (end + 1 <= maxId && !byId.has(end + 1) && !appliedById.has(end + 1)) end++
    const range = end === id ? `number ${id}` : `numbers ${id}–${end}`
    items.push({
      kind: 'gap',
      id,
      ...(after ? { file: after.fileName } : {}),
      detail: `gap in numbering: no file with ${range}${before ? ` after ${before.fileName}` : ''}${after ? ` before ${after.fileName}` : ''}; ids must be consecutive`,
    })
    id = end
  }
  return { ok: items.length === 0, items }
}

function editCause(f: MigrationFile, row: AppliedRow): NonNullable<DriftItem['cause']> {
  const variants = [f.sql.replace(/\r\n/g, '\n'), f.sql.replace(/\r?\n/g, '\r\n')]
  const sameName = f.name === row.name
  if (sameName && variants.some((s) => hashMigration(f.fileName, s) === row.hash)) return 'line-endings'
  if (!sameName) {
    // Rebuild the file name it had when applied: same id prefix and extension, recorded name.
    const prefix = /^(-?\d+[-_]?)/.exec(f.fileName)?.[1] ?? `${f.id}_`
    const ext = f.fileName.slice(f.fileName.lastIndexOf('.'))
    const old = `${prefix}${row.name}${ext}`
    if ([f.sql, ...variants].some((s) => hashMigration(old, s) === row.hash)) return 'renamed'
    return 'renamed-and-edited'
  }
  return 'content'
}

/** Files not yet applied, in id order. */
export function pendingFiles(files: MigrationFile[], applied: AppliedRow[]): MigrationFile[] {
  const done = new Set(applied.map((r) => r.id))
  return files.filter((f) => !done.has(f.id))
}
