import { defineError } from '../errors/index.js'

// Errors of the realtime area (WebSocket server, change stream, tokens).

export const REALTIME_BAD_CLAIMS = defineError<{ reason: string }>({
  code: 'E_REALTIME_BAD_CLAIMS',
  class: 'invalid_argument',
  area: 'realtime',
  message: (a) => `Invalid token claims: ${a.reason}.`,
  hint: () => 'Pass --claims as a JSON object, e.g. --claims \'{"sub":"user-1","topics":["room:*"]}\' (role and exp come from --role and --expires).',
})

export const REALTIME_BAD_ROLE = defineError<{ role: string }>({
  code: 'E_REALTIME_BAD_ROLE',
  class: 'invalid_argument',
  area: 'realtime',
  message: (a) => `"${a.role}" is not a valid role name for a realtime token.`,
  hint: () => 'Use the name of a database role, e.g. `magflock realtime token --role authenticated`.',
})

export const REALTIME_WAL_LEVEL = defineError<{ instance: string; level: string }>({
  code: 'E_REALTIME_WAL_LEVEL',
  class: 'failed_precondition',
  area: 'realtime',
  message: (a) => `Instance ${a.instance} runs with wal_level = ${a.level}; realtime needs logical.`,
  hint: () => 'Remove wal_level from postgres.settings (realtime sets it), then restart the kernel.',
})
