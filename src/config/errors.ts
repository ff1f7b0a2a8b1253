import { defineError } from '../errors/index.js'

/**
 * Config errors. Messages name the key path, the offending value, what was expected and
 * where the value came from (file:line or the variable name), so an operator can fix it
 * without reading code. Values of keys that look sensitive are never echoed (see describeValue).
 */

export interface ConfigProblem {
  /** Dotted key path, `(root)` for the document itself. */
  path: string
  /** Human text: `expected an integer 1–65535, got "abc"` or `unknown key; did you mean "port"?` */
  problem: string
  /** Where the offending value came from, rendered: `magflock.production.yaml:7`, `MAGFLOCK_POSTGRES__PORT`, `--postgres.port`, `default`. */
  where: string
  suggestion?: string
}

/** Problems listed in the message; the rest are counted. */
const SHOWN_PROBLEMS = 20
/** Problems carried in an error's details (`--json`). */
export const MAX_LISTED_PROBLEMS = 100

export const CONFIG_INVALID = defineError<{ problems: ConfigProblem[]; env: string; total?: number }>({
  code: 'E_CONFIG_INVALID',
  class: 'invalid_argument',
  area: 'config',
  message: (a) => {
    const total = a.total ?? a.problems.length
    // A file with thousands of bad keys gets the first few; details carry up to MAX_LISTED.
    const lines = a.problems.slice(0, SHOWN_PROBLEMS).map((p) => `${p.path}: ${p.problem} (${p.where})`)
    if (total > lines.length) lines.push(`… and ${total - lines.length} more`)
    const head = total === 1 ? 'Invalid configuration' : `Invalid configuration (${total} problems)`
    return `${head} for env "${a.env}":\n  ${lines.join('\n  ')}`
  },
  hint: (a) => {
    const first = a.problems[0]
    if (!first) return '`magflock config validate` re-checks the configuration.'
    const recheck = `\`magflock config validate --env ${a.env}\` re-checks.`
    if (first.suggestion && first.suggestion === first.path) return `Nest it: write "${first.path.split('.').join(':" then "')}:" one level per key at ${first.where}; ${recheck}`
    if (first.suggestion) return `Rename "${first.path}" to "${first.suggestion}" at ${first.where}; ${recheck}`
    if (first.problem.startsWith('unknown key')) return `Remove "${first.path}" at ${first.where} (\`magflock config show --explain\` lists every key); ${recheck}`
    if (first.path === '(root)') return `Make ${first.where.split(':')[0]} a mapping of keys; ${recheck}`
    return `Fix the value at ${first.where}, or set it with \`magflock config set ${first.path} VALUE\`; ${recheck}`
  },
})

export const CONFIG_SYNTAX = defineError<{ file: string; line: number; column: number; reason: string }>({
  code: 'E_CONFIG_SYNTAX',
  class: 'invalid_argument',
  area: 'config',
  message: (a) => `YAML syntax error in ${a.file} at line ${a.line}, column ${a.column}: ${a.reason}`,
  hint: (a) => `Fix ${a.file} near line ${a.line}; \`magflock config validate\` re-checks it.`,
})

export const CONFIG_BAD_ENV = defineError<{ env: string }>({
  code: 'E_CONFIG_BAD_ENV',
  class: 'invalid_argument',
  area: 'config',
  message: (a) => `"${a.env}" is not a valid environment name (letters, digits, "-" and "_", at most 32).`,
  hint: () => 'Pass e.g. `--env production` or set MAGFLOCK_ENV=staging.',
})

export const CONFIG_UNKNOWN_KEY = defineError<{ key: string; suggestion?: string | undefined }>({
  code: 'E_CONFIG_UNKNOWN_KEY',
  class: 'invalid_argument',
  area: 'config',
  message: (a) => `"${a.key}" is not a configuration key${a.suggestion ? `; did you mean "${a.suggestion}"?` : '.'}`,
  hint: () => '`magflock config show --explain` lists every key; docs/configuration.md describes them.',
})

export const CONFIG_READ_FAILED = defineError<{ file: string; reason: string }>({
  code: 'E_CONFIG_READ_FAILED',
  class: 'failed_precondition',
  area: 'config',
  message: (a) => `Cannot read ${a.file}: ${a.reason}.`,
  hint: (a) => `Check that ${a.file} is a readable file.`,
})

export const CONFIG_TOO_LARGE = defineError<{ file: string; bytes: number; max: number }>({
  code: 'E_CONFIG_TOO_LARGE',
  class: 'invalid_argument',
  area: 'config',
  message: (a) => `${a.file} is ${a.bytes} bytes; a config file may hold at most ${a.max} bytes (${a.max / 1024 / 1024} MiB).`,
  hint: (a) => `Check ${a.file}: a MagFlock config is a few kilobytes. Large values such as certificates belong in files or the vault (\`magflock secrets set NAME\`), referenced from the config.`,
})
