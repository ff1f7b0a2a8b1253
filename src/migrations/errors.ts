import { defineError } from '../errors/index.js'

/**
 * Errors of `magflock db migrate`, `db migrate status` and `migration new`.
 * Exit codes (docs/ci.md): drift, lint, invalid index, table conflict → 5 (failed_precondition);
 * a failing migration → 12 (aborted); lock timeout → 10 (deadline_exceeded).
 */

export const MIGRATION_DRIFT = defineError<{ database: string; count: number; first: string }>({
  code: 'E_MIGRATION_DRIFT',
  class: 'failed_precondition',
  area: 'migrations',
  message: (a) =>
    `Refusing to migrate ${a.database}: the migration files drifted from what was applied (${a.count} problem${a.count === 1 ? '' : 's'}; first: ${a.first}).`,
  hint: () =>
    'Run `magflock db migrate status` for the full report. Restore the applied files as they were (git), and put new changes in a new file (`magflock migration new NAME`).',
})

export const MIGRATION_LINT = defineError<{ file: string; problem: string }>({
  code: 'E_MIGRATION_LINT',
  class: 'failed_precondition',
  area: 'migrations',
  message: (a) => `Migration ${a.file} was not run: ${a.problem}.`,
  hint: () =>
    'Files marked `-- postgres-migrations disable-transaction` run outside a transaction and must hold exactly one statement: split them into one file per statement (see docs/migrations.md).',
})

export const MIGRATION_FAILED = defineError<{ file: string; where: string; pgMessage: string; transactional: boolean }>({
  code: 'E_MIGRATION_FAILED',
  class: 'aborted',
  area: 'migrations',
  message: (a) =>
    `Migration ${a.file} failed${a.where ? ` at ${a.where}` : ''}: ${a.pgMessage}. ` +
    (a.transactional
      ? 'Its transaction was rolled back and no later migration was applied.'
      : 'It ran outside a transaction (disable-transaction); no later migration was applied.'),
  hint: (a) => `Fix ${a.file} (it was not recorded as applied) and run \`magflock db migrate\` again.`,
})

export const MIGRATE_LOCK_TIMEOUT = defineError<{ database: string; seconds: number; holder: string }>({
  code: 'E_MIGRATE_LOCK_TIMEOUT',
  class: 'deadline_exceeded',
  area: 'migrations',
  message: (a) => `Gave up after ${a.seconds} s waiting for the migration lock on ${a.database}; it is held by ${a.holder}.`,
  hint: () =>
    'Another migration is running: wait for it, raise `--lock-timeout` (config `migrations.lockTimeoutSeconds`), or end a stuck holder with `SELECT pg_terminate_backend(<pid>)`.',
})

export const MIGRATIONS_TABLE_CONFLICT = defineError<{ tables: string; reason: string }>({
  code: 'E_MIGRATIONS_TABLE_CONFLICT',
  class: 'failed_precondition',
  area: 'migrations',
  message: (a) => `A table named "migrations" that is not MagFlock's migration log is in the way: ${a.tables} (${a.reason}).`,
  hint: () =>
    'postgres-migrations looks the table up by name in every schema. Rename that table (`ALTER TABLE <schema>.migrations RENAME TO …`) and run again.',
})

export const MIGRATION_INVALID_INDEX = defineError<{ indexes: string; when: 'before' | 'after' }>({
  code: 'E_MIGRATION_INVALID_INDEX',
  class: 'failed_precondition',
  area: 'migrations',
  message: (a) =>
    a.when === 'before'
      ? `Refusing to run non-transactional migrations while an INVALID index exists: ${a.indexes}. A re-run with IF NOT EXISTS would record it as applied.`
      : `Migrations left an INVALID index behind: ${a.indexes} (a failed CREATE INDEX CONCURRENTLY).`,
  hint: () => 'Drop it (`DROP INDEX CONCURRENTLY <name>`) and run `magflock db migrate` again to rebuild it.',
})

export const MIGRATIONS_DIR_MISSING = defineError<{ dir: string }>({
  code: 'E_MIGRATIONS_DIR_MISSING',
  class: 'not_found',
  area: 'migrations',
  message: (a) => `Migrations folder ${a.dir} does not exist.`,
  hint: () => 'Pass `--dir PATH`, set `migrations.dir` in magflock.yaml, or create the first file with `magflock migration new NAME`.',
})

export const MIGRATION_FILE_INVALID = defineError<{ file: string; reason: string }>({
  code: 'E_MIGRATION_FILE_INVALID',
  class: 'invalid_argument',
  area: 'migrations',
  message: (a) => `Migration file ${a.file} is not usable: ${a.reason}.`,
  hint: () => 'Migration files are named `<number>_<name>.sql` (or `.js` exporting generateSql()); create them with `magflock migration new NAME`.',
})

export const MIGRATE_CONNECT = defineError<{ target: string; reason: string }>({
  code: 'E_MIGRATE_CONNECT',
  class: 'unavailable',
  area: 'migrations',
  message: (a) => `Could not connect to ${a.target}: ${a.reason}.`,
  hint: () => 'Check the --db-url (host, port, user, database) and that Postgres accepts connections from 127.0.0.1; `magflock status` for a managed flock.',
})

export const MIGRATE_POOL_REJECTED = defineError<void>({
  code: 'E_MIGRATE_POOL_REJECTED',
  class: 'invalid_argument',
  area: 'migrations',
  message: () => 'The migration runner was given a pg.Pool or a shared client; it needs connection settings so it can open a dedicated connection.',
  hint: () => 'Pass a pg.ClientConfig or a URL. postgres-migrations loses its lock and transactions across pooled connections.',
})

export const MIGRATION_NAME_INVALID = defineError<{ name: string }>({
  code: 'E_MIGRATION_NAME_INVALID',
  class: 'invalid_argument',
  area: 'migrations',
  message: (a) => `"${a.name}" is not a usable migration name.`,
  hint: () => 'Use letters, digits, "-" and "_" (up to 80 characters), e.g. `magflock migration new add-users-table`.',
})

export const DB_URL_INVALID = defineError<{ reason: string }>({
  code: 'E_DB_URL_INVALID',
  class: 'invalid_argument',
  area: 'migrations',
  message: (a) => `The --db-url is not a usable Postgres URL: ${a.reason}.`,
  hint: () => 'Use postgres://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters in the password).',
})

/* Least privilege through the kernel (docs/operations.md, "Access control"). */

export const MIGRATE_DIR_FORBIDDEN = defineError<{ role: string }>({
  code: 'E_MIGRATE_DIR_FORBIDDEN',
  class: 'permission_denied',
  area: 'migrations',
  message: (a) =>
    `A ${a.role} token may not name a migrations folder: the kernel reads the folder configured for the database, and only an admin token may point it anywhere else.`,
  hint: () =>
    'Drop --dir: the kernel uses the folder an admin registered for the database (`magflock db migrate --db NAME --dir PATH --register`, admin token), else `migrations.dir` of its magflock.yaml (default ./migrations of the project it runs in).',
})

export const MIGRATION_JS_FORBIDDEN = defineError<{ file: string; reason: string }>({
  code: 'E_MIGRATION_JS_FORBIDDEN',
  class: 'permission_denied',
  area: 'migrations',
  message: (a) => `Migration ${a.file} is a .js file and was not run: ${a.reason}. Nothing was applied.`,
  hint: () =>
    'Turn it into a .sql file, run this migration with an admin token (the kernel runs generateSql() as the unprivileged user `nobody`), or run it from the CLI with --db-url. `db migrate status` and --dry-run never run .js files.',
})

export const MIGRATE_PLATFORM_DB = defineError<{ database: string; role: string }>({
  code: 'E_MIGRATE_PLATFORM_DB',
  class: 'permission_denied',
  area: 'migrations',
  message: (a) => `${a.database} is a platform database: a ${a.role} token may not migrate or inspect it.`,
  hint: () => 'Put application tables in a database of their own (`magflock db create NAME`), or use an admin token.',
})

export const MIGRATE_OWNER_UNKNOWN = defineError<{ database: string; owner: string; role: string }>({
  code: 'E_MIGRATE_OWNER_UNKNOWN',
  class: 'failed_precondition',
  area: 'migrations',
  message: (a) =>
    `MagFlock holds no password for ${a.owner}, the owner of ${a.database}, and never migrates as the database superuser for a ${a.role} token. Nothing was applied.`,
  hint: () =>
    'Create databases with `magflock db create NAME` (it keeps the owner\'s password in the vault), or run this migration with an admin token.',
})

export const MIGRATE_PRIVILEGED_ROLE = defineError<{ database: string; user: string; why: string }>({
  code: 'E_MIGRATE_PRIVILEGED_ROLE',
  class: 'failed_precondition',
  area: 'migrations',
  message: (a) =>
    `Refusing to migrate ${a.database} as ${a.user} for a non-admin token: the role ${a.why}, so its migrations could run programs on the server. Nothing was applied.`,
  hint: (a) => `Take the privilege away (\`ALTER ROLE ${a.user} NOSUPERUSER\`, \`REVOKE pg_execute_server_program FROM ${a.user}\`), or use an admin token.`,
})
