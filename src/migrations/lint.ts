import { DISABLE_TRANSACTION_MARKER, type MigrationFile } from './files.js'
import { splitStatements } from './sql-lexer.js'

/**
 * Checks pending files before anything runs.
 *
 * postgres-migrations sends a whole file as one simple-protocol query. With
 * `-- postgres-migrations disable-transaction` there is no BEGIN around it, and Postgres
 * then runs a multi-statement string as one implicit transaction, which CREATE INDEX
 * CONCURRENTLY refuses; and if a later statement fails the earlier ones stay applied while
 * the file is not recorded. So a non-transactional file must hold exactly one statement.
 * A transactional file that uses CONCURRENTLY (or VACUUM, CREATE DATABASE…) would fail
 * inside its transaction: say so before running rather than after.
 */
export interface LintProblem {
  file: string
  problem: string
}

const OUTSIDE_TX_ONLY: Array<{ test: (words: string[]) => boolean; what: string }> = [
  { test: (w) => w.includes('CONCURRENTLY') && (w[0] === 'CREATE' || w[0] === 'DROP' || w[0] === 'REINDEX'), what: '… CONCURRENTLY' },
  { test: (w) => w[0] === 'VACUUM', what: 'VACUUM' },
  { test: (w) => w[0] === 'CREATE' && w[1] === 'DATABASE', what: 'CREATE DATABASE' },
  { test: (w) => w[0] === 'DROP' && w[1] === 'DATABASE', what: 'DROP DATABASE' },
  { test: (w) => w[0] === 'ALTER' && w[1] === 'SYSTEM', what: 'ALTER SYSTEM' },
]

const NEAR_MISS_MARKER = /--\s*postgres-migrations?\s*disable[-_ ]?transactions?/i

export function lintMigration(f: MigrationFile): LintProblem[] {
  const problems: LintProblem[] = []
  // A .js file not evaluated has no SQL to lint yet; `db migrate` lints it after evaluating.
  if (f.unevaluated) return problems
  const statements = splitStatements(f.sql)
  if (!f.transactional) {
    // The library matches the marker anywhere, even quoted inside a longer comment line
    // (older `migration new` templates did that): such a file silently leaves its
    // transaction. Only a line that is exactly the marker counts as meant.
    const own = f.sql.split(/\r?\n/).some((l) => l.trim() === DISABLE_TRANSACTION_MARKER)
    if (!own) {
      const line = f.sql.split(/\r?\n/).findIndex((l) => l.includes(DISABLE_TRANSACTION_MARKER)) + 1
      problems.push({
        file: f.fileName,
        problem: `line ${line} quotes "${DISABLE_TRANSACTION_MARKER}" inside other text, which still takes the file out of its transaction; write the marker as a line of its own to mean it, or remove it`,
      })
    }
    if (statements.length > 1) {
      problems.push({
        file: f.fileName,
        problem: `it is marked disable-transaction but holds ${statements.length} statements; a non-transactional file must hold exactly one`,
      })
    }
  } else {
    const near = NEAR_MISS_MARKER.exec(f.sql)
    if (near && !f.sql.includes(DISABLE_TRANSACTION_MARKER)) {
      problems.push({
        file: f.fileName,
        problem: `"${near[0]}" is not recognised; the marker must be written exactly "${DISABLE_TRANSACTION_MARKER}"`,
      })
    }
    for (const st of statements) {
      const hit = OUTSIDE_TX_ONLY.find((r) => r.test(st.words))
      if (hit) {
        problems.push({
          file: f.fileName,
          problem: `${hit.what} cannot run inside a transaction; put it alone in a file that starts with "${DISABLE_TRANSACTION_MARKER}"`,
        })
        break
      }
    }
  }
  return problems
}

export function lintMigrations(files: MigrationFile[]): LintProblem[] {
  return files.flatMap(lintMigration)
}
