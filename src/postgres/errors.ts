import { defineError } from '../errors/index.js'

/**
 * Errors of the Postgres instance area (initdb, start, stop, adopt, supervision).
 * E_PORT_IN_USE comes from src/errors/common.ts. Messages name instances and paths, never
 * passwords; a log tail in a message is Postgres' own log, which never holds the password
 * (it is set through --pwfile and ALTER ROLE statements are not logged by our settings).
 */

export const INSTANCE_NOT_INITIALIZED = defineError<{ instance: string; dataDir: string; leftover?: boolean }>({
  code: 'E_INSTANCE_NOT_INITIALIZED',
  class: 'failed_precondition',
  area: 'postgres',
  message: (a) =>
    a.leftover
      ? `Instance "${a.instance}" has only a half-initialised data directory (an interrupted initdb left ${a.dataDir}.initializing).`
      : `Instance "${a.instance}" has no data directory at ${a.dataDir}.`,
  hint: () => 'Run `magflock init` (or `magflock up`) to initialise it; a leftover data.initializing is removed and redone.',
})

export const INSTANCE_DATA_MISSING = defineError<{ instance: string; dataDir: string }>({
  code: 'E_INSTANCE_DATA_MISSING',
  class: 'data_loss',
  area: 'postgres',
  message: (a) => `Instance "${a.instance}" was provisioned before (topology.json lists it) but its data directory ${a.dataDir} is gone; MagFlock will not initdb an empty database in its place.`,
  hint: () =>
    'Put the data directory back if you can. Otherwise restore from a backup: move <state>/topology.json aside, run `magflock up` (a new, empty primary), then `magflock backup restore ID --force` over it.',
})

export const INSTANCE_ALREADY_INITIALIZED = defineError<{ instance: string; dataDir: string }>({
  code: 'E_INSTANCE_ALREADY_INITIALIZED',
  class: 'already_exists',
  area: 'postgres',
  message: (a) => `Instance "${a.instance}" is already initialised at ${a.dataDir}.`,
  hint: () => 'Start it with `magflock up`; to recreate it, stop it with `magflock down` and move the data directory aside first.',
})

export const INSTANCE_INIT_FAILED = defineError<{ instance: string; reason: string }>({
  code: 'E_INSTANCE_INIT_FAILED',
  class: 'internal',
  area: 'postgres',
  message: (a) => `initdb for instance "${a.instance}" failed: ${a.reason}`,
  hint: () => 'Check disk space and permissions of the state directory, then re-run `magflock init`; nothing half-done is kept.',
})

export const INSTANCE_START_FAILED = defineError<{ instance: string; reason: string; logTail: string }>({
  code: 'E_INSTANCE_START_FAILED',
  class: 'unavailable',
  area: 'postgres',
  message: (a) =>
    `Postgres instance "${a.instance}" failed to start: ${a.reason}.${a.logTail ? `\nLast lines of postgres.log:\n${a.logTail}` : ''}`,
  hint: () => 'Read <state>/instances/<name>/postgres.log; fix the setting it names (`magflock config set postgres.settings…`) and run `magflock up`.',
})

export const INSTANCE_START_TIMEOUT = defineError<{ instance: string; ms: number; logTail: string }>({
  code: 'E_INSTANCE_START_TIMEOUT',
  class: 'deadline_exceeded',
  area: 'postgres',
  message: (a) =>
    `Postgres instance "${a.instance}" did not accept connections within ${a.ms} ms.${a.logTail ? `\nLast lines of postgres.log:\n${a.logTail}` : ''}`,
  hint: () => 'Crash recovery of a large instance can take a while: raise `postgres.startTimeoutSeconds`, or read postgres.log for the cause.',
})

export const INSTANCE_STOP_TIMEOUT = defineError<{ instance: string; pid: number; mode: string; ms: number }>({
  code: 'E_INSTANCE_STOP_TIMEOUT',
  class: 'deadline_exceeded',
  area: 'postgres',
  message: (a) => `Postgres instance "${a.instance}" (pid ${a.pid}) did not stop within ${a.ms} ms of a ${a.mode} shutdown.`,
  hint: () => 'Clients may hold it open (smart mode waits for them): retry with `magflock down --mode immediate`.',
})

export const INSTANCE_NOT_RUNNING = defineError<{ instance: string }>({
  code: 'E_INSTANCE_NOT_RUNNING',
  class: 'unavailable',
  area: 'postgres',
  message: (a) => `Postgres instance "${a.instance}" is not running.`,
  hint: () => 'Start it with `magflock up`; `magflock status` shows why it stopped.',
})

export const INVALID_SETTING = defineError<{ name: string }>({
  code: 'E_POSTGRES_INVALID_SETTING',
  class: 'invalid_argument',
  area: 'postgres',
  message: (a) => `${JSON.stringify(a.name)} is not a valid Postgres setting name.`,
  hint: () => 'Fix the key under `postgres.settings` in magflock.yaml (names look like work_mem or auto_explain.log_min_duration).',
})

export const INSTANCE_DIR_INACCESSIBLE = defineError<{ dir: string; user: string }>({
  code: 'E_INSTANCE_DIR_INACCESSIBLE',
  class: 'permission_denied',
  area: 'postgres',
  message: (a) => `The OS user "${a.user}" that runs Postgres cannot reach ${a.dir}.`,
  hint: (a) => `Put the state directory where ${a.user} can traverse every parent (e.g. \`chmod o+x ${a.dir}\`), or use --state-dir.`,
})

export const TOPOLOGY_MISSING = defineError<{ instances: string[] }>({
  code: 'E_TOPOLOGY_MISSING',
  class: 'failed_precondition',
  area: 'postgres',
  message: (a) => `topology.json is missing, but the state directory holds more instances than the primary (${a.instances.join(', ')}); booting would leave them unsupervised.`,
  hint: () => 'Run `magflock doctor --repair`: it rebuilds topology.json from the instance directories and running postmasters. Then `magflock up`.',
})
