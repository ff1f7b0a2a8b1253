import { defineError } from './define.js'

// Errors shared by every area. Each domain keeps its own catalog beside its code
// (src/<domain>/errors.ts) using defineError; codes are unique across the project.

export const INTERNAL = defineError<{ message: string }>({
  code: 'E_INTERNAL',
  class: 'internal',
  area: 'general',
  message: (a) => `Internal error: ${a.message}`,
  hint: () => 'This is a bug in MagFlock. Run `magflock kernel logs` and report it with the output.',
})

export const USAGE = defineError<{ message: string; command?: string | undefined; hint?: string | undefined }>({
  code: 'E_USAGE',
  class: 'invalid_argument',
  area: 'cli',
  message: (a) => a.message,
  hint: (a) => a.hint ?? (a.command ? `\`magflock ${a.command} --help\` shows its arguments, flags and examples.` : 'Run the command with --help to see its arguments, flags and examples.'),
})

export const INVALID_REQUEST = defineError<{ message: string }>({
  code: 'E_INVALID_REQUEST',
  class: 'invalid_argument',
  area: 'api',
  message: (a) => `Invalid request: ${a.message}`,
  hint: () => 'Check the request body against the schema in src/api (docs/architecture.md lists the routes).',
})

export const BINARY_MISSING = defineError<{ tool: string; searched: string[] }>({
  code: 'E_BINARY_MISSING',
  class: 'failed_precondition',
  area: 'platform',
  message: (a) => `The Postgres tool \`${a.tool}\` was not found (looked in: ${a.searched.join(', ') || 'nowhere'}).`,
  hint: () =>
    'Install PostgreSQL (Debian: `apt-get install -y postgresql`), or set `postgres.binDir` in magflock.yaml, then run `magflock doctor`.',
})

export const CORRUPT_STATE = defineError<{ file: string; reason: string }>({
  code: 'E_CORRUPT_STATE',
  class: 'data_loss',
  area: 'state',
  message: (a) => `State file ${a.file} is unreadable: ${a.reason}.`,
  hint: (a) =>
    a.file.endsWith('topology.json')
      ? 'Run `magflock doctor --repair` (kernel stopped): it rebuilds topology.json from the instance directories and running postmasters, replicas included. Nothing else was changed.'
      : 'Move the file aside and re-run; MagFlock rebuilds it from what is running. Nothing else was changed.',
})

export const PORT_IN_USE = defineError<{ port: number; what: string }>({
  code: 'E_PORT_IN_USE',
  class: 'failed_precondition',
  area: 'platform',
  message: (a) => `Port ${a.port} (${a.what}) is already in use on 127.0.0.1.`,
  hint: (a) =>
    `Stop what listens there, or choose another port: \`magflock config set ${a.what} ${a.port + 1}\` (or MAGFLOCK_${a.what.toUpperCase().replace('.', '__')}=${a.port + 1}).`,
})

export const TIMEOUT = defineError<{ what: string; ms: number }>({
  code: 'E_TIMEOUT',
  class: 'deadline_exceeded',
  area: 'general',
  message: (a) => `Timed out after ${a.ms} ms waiting for ${a.what}.`,
  hint: () => 'Check `magflock kernel logs` and the instance log under <state>/instances/<name>/postgres.log.',
})

export const COMMAND_FAILED = defineError<{ tool: string; exitCode: number | string; stderr: string }>({
  code: 'E_COMMAND_FAILED',
  class: 'internal',
  area: 'platform',
  message: (a) => `${a.tool} failed (exit ${a.exitCode}): ${a.stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}`,
  hint: () => 'The tool\'s own message is above; `magflock kernel logs` has the full command line (secrets redacted).',
})

export const OS_USER_MISSING = defineError<{ user: string }>({
  code: 'E_OS_USER_MISSING',
  class: 'failed_precondition',
  area: 'platform',
  message: (a) => `OS user "${a.user}" does not exist, and Postgres refuses to run as root.`,
  hint: (a) => `Create it (\`useradd --system --home /var/lib/postgresql ${a.user}\`) or set postgres.osUser in magflock.yaml.`,
})
