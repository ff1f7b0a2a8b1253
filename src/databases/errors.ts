import { defineError } from '../errors/index.js'

/** Errors of `magflock db create|list|url|drop|psql`. Exit codes: see docs/ci.md. */

export const DB_NAME_INVALID = defineError<{ name: string; what: 'database' | 'role'; reason: string }>({
  code: 'E_DB_NAME_INVALID',
  class: 'invalid_argument',
  area: 'databases',
  message: (a) => `"${a.name}" is not a valid ${a.what} name: ${a.reason}.`,
  hint: () => 'Use a lowercase identifier: a letter or "_" first, then letters, digits or "_", at most 63 characters (e.g. `magflock db create app`).',
})

export const DB_EXISTS = defineError<{ name: string }>({
  code: 'E_DB_EXISTS',
  class: 'already_exists',
  area: 'databases',
  message: (a) => `Database "${a.name}" already exists.`,
  hint: (a) => `Nothing was changed. In scripts use \`magflock db create ${a.name} --if-not-exists\` to succeed when it is there.`,
})

export const DB_NOT_FOUND = defineError<{ name: string }>({
  code: 'E_DB_NOT_FOUND',
  class: 'not_found',
  area: 'databases',
  message: (a) => `Database "${a.name}" does not exist.`,
  hint: (a) => `Create it with \`magflock db create ${a.name}\`; \`magflock db list\` shows what exists.`,
})

export const DB_PROTECTED = defineError<{ name: string }>({
  code: 'E_DB_PROTECTED',
  class: 'failed_precondition',
  area: 'databases',
  message: (a) => `Database "${a.name}" belongs to the platform and cannot be dropped.`,
  hint: () => 'Only databases created with `magflock db create` can be dropped.',
})

export const DB_IN_USE = defineError<{ name: string; sessions: number }>({
  code: 'E_DB_IN_USE',
  class: 'conflict',
  area: 'databases',
  message: (a) => `Database "${a.name}" has ${a.sessions} open session${a.sessions === 1 ? '' : 's'}; it was not dropped.`,
  hint: (a) => `Stop the clients, or disconnect them with \`magflock db drop ${a.name} --disconnect\`.`,
})

export const DB_BUSY = defineError<{ name: string; holder: string }>({
  code: 'E_DB_BUSY',
  class: 'conflict',
  area: 'databases',
  message: (a) => `Database "${a.name}" is being migrated (migration lock held by ${a.holder}); it was not dropped.`,
  hint: () => 'Wait for the migration to finish and try again.',
})

export const DB_NO_CREDENTIALS = defineError<{ name: string; secret: string; owner: string }>({
  code: 'E_DB_NO_CREDENTIALS',
  class: 'not_found',
  area: 'databases',
  message: (a) => `The vault holds no password for "${a.owner}", the owner of "${a.name}" (secret ${a.secret}); only an admin token may open it as the superuser.`,
  hint: (a) =>
    `MagFlock did not create "${a.owner}" (a restored database, or one made outside MagFlock). Run the command with the admin token ` +
    `(the default, <state>/admin.token), or store the owner's password with \`magflock secrets set ${a.secret}\`.`,
})

export const DB_CONFIRMATION_REQUIRED = defineError<{ name: string }>({
  code: 'E_DB_CONFIRMATION_REQUIRED',
  class: 'failed_precondition',
  area: 'databases',
  message: (a) => `Dropping "${a.name}" needs a confirmation and none can be asked for here (no terminal, or --json).`,
  hint: (a) => `Scripts pass --force: \`magflock db drop ${a.name} --force\`.`,
})

export const DB_DROP_CANCELLED = defineError<{ name: string }>({
  code: 'E_DB_DROP_CANCELLED',
  class: 'aborted',
  area: 'databases',
  message: (a) => `Did not drop "${a.name}": the confirmation did not match.`,
  hint: () => 'Type the database name exactly to confirm, or pass --force in scripts.',
})

export const DB_REVEAL_DENIED = defineError<{ role: string }>({
  code: 'E_DB_REVEAL_DENIED',
  class: 'permission_denied',
  area: 'databases',
  message: (a) => `A ${a.role} token may not reveal database passwords.`,
  hint: () => 'Drop --reveal, or use an operator or admin token (`magflock token create --role operator`).',
})
