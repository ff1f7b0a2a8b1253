import { defineError } from '../errors/index.js'

// Errors of the pooler area (the managed PgBouncer).

export const POOLER_BINARY_MISSING = defineError<{ searched: string[] }>({
  code: 'E_POOLER_BINARY_MISSING',
  class: 'failed_precondition',
  area: 'pooler',
  message: (a) => `PgBouncer was not found (looked in: ${a.searched.join(', ')}).`,
  hint: () => 'Install it (Debian: `apt-get install -y pgbouncer`) or set `pooler.enabled: false`.',
})

export const POOLER_START_FAILED = defineError<{ reason: string; logTail: string }>({
  code: 'E_POOLER_START_FAILED',
  class: 'unavailable',
  area: 'pooler',
  message: (a) => `PgBouncer did not start: ${a.reason}${a.logTail ? `\n${a.logTail}` : ''}`,
  hint: () => 'Check pooler.port is free (`magflock config show pooler`) and the log in <state>/pooler/pgbouncer.log.',
})

export const POOLER_DISABLED = defineError<Record<string, never>>({
  code: 'E_POOLER_DISABLED',
  class: 'failed_precondition',
  area: 'pooler',
  message: () => 'The pooler is not enabled in this flock.',
  hint: () => 'Enable it with `magflock config set pooler.enabled true`, then restart the kernel (`magflock kernel stop && magflock kernel start`).',
})

export const POOLER_UNAVAILABLE = defineError<{ reason: string }>({
  code: 'E_POOLER_UNAVAILABLE',
  class: 'unavailable',
  area: 'pooler',
  message: (a) => `PgBouncer's admin console did not answer: ${a.reason}`,
  hint: () => 'See `magflock status` for the pooler component; the kernel restarts PgBouncer by its restart policy.',
})

export const POOLER_READ_ONLY_DISABLED = defineError<Record<string, never>>({
  code: 'E_POOLER_READ_ONLY_DISABLED',
  class: 'failed_precondition',
  area: 'pooler',
  message: () => 'The pooler serves no read-only pool (pooler.readOnly.enabled is false).',
  hint: () => 'Turn it on with `magflock config set pooler.readOnly.enabled true`, or drop --read-only to reach the primary.',
})
