import { defineError } from '../errors/index.js'

// Errors of the replication area (replicas, switchover, failover, fencing).

export const REPLICA_EXISTS = defineError<{ name: string }>({
  code: 'E_REPLICA_EXISTS',
  class: 'already_exists',
  area: 'replication',
  message: (a) => `An instance named "${a.name}" already exists in this flock.`,
  hint: () => 'Pick another name (`magflock replica add NAME`) or see `magflock replica list`.',
})

export const REPLICA_NOT_FOUND = defineError<{ name: string }>({
  code: 'E_REPLICA_NOT_FOUND',
  class: 'not_found',
  area: 'replication',
  message: (a) => `No replica named "${a.name}" in this flock.`,
  hint: () => 'List the replicas with `magflock replica list`.',
})

export const INVALID_REPLICA_NAME = defineError<{ name: string }>({
  code: 'E_REPLICA_NAME_INVALID',
  class: 'invalid_argument',
  area: 'replication',
  message: (a) => `"${a.name}" is not a valid replica name (lowercase letters, digits and _; starts with a letter; at most 40; not a role word (primary, replica, fenced, standalone) nor pg1, the first instance's name).`,
  hint: () => 'Use a name like pg2 or eu_west_1, or leave it out for the next free pgN: `magflock replica add`.',
})

export const NOT_A_STANDBY = defineError<{ name: string }>({
  code: 'E_NOT_A_STANDBY',
  class: 'failed_precondition',
  area: 'replication',
  message: (a) => `${a.name} is not in recovery, so it cannot be promoted or repointed.`,
  hint: () => 'Check the topology with `magflock replica list`; only a streaming replica can be promoted.',
})

export const NO_CANDIDATE = defineError<{ reason: string }>({
  code: 'E_NO_FAILOVER_CANDIDATE',
  class: 'failed_precondition',
  area: 'replication',
  message: (a) => `No replica can be promoted: ${a.reason}.`,
  hint: () =>
    'Add a replica (`magflock replica add`), wait for it to catch up (`magflock replica list`), or name one with `magflock failover --to NAME --force`.',
})

export const CATCHUP_TIMEOUT = defineError<{ name: string; targetLsn: string; replayLsn: string; ms: number }>({
  code: 'E_REPLICA_CATCHUP_TIMEOUT',
  class: 'deadline_exceeded',
  area: 'replication',
  message: (a) => `${a.name} did not replay up to ${a.targetLsn} within ${a.ms} ms (it is at ${a.replayLsn}); the switchover was rolled back and the old primary is serving again.`,
  hint: () => 'Check the replica with `magflock replica list` (lag) and its log under <state>/instances/<name>/postgres.log, then retry `magflock switchover`.',
})

export const FENCED = defineError<{ name: string; reason: string }>({
  code: 'E_INSTANCE_FENCED',
  class: 'failed_precondition',
  area: 'replication',
  message: (a) => `Instance ${a.name} is fenced (${a.reason}) and must not start as a primary.`,
  hint: (a) => `It rejoins as a replica of the current primary with \`magflock replica rejoin ${a.name}\`; or remove it with \`magflock replica remove ${a.name}\`.`,
})

export const REWIND_FAILED = defineError<{ name: string; reason: string }>({
  code: 'E_REWIND_FAILED',
  class: 'internal',
  area: 'replication',
  message: (a) => `pg_rewind could not resynchronise ${a.name}: ${a.reason}.`,
  hint: () => 'MagFlock falls back to a fresh clone; if that failed too, remove the instance and add it again (`magflock replica remove NAME && magflock replica add NAME`).',
})

export const SWITCHOVER_TARGET = defineError<{ reason: string }>({
  code: 'E_SWITCHOVER_TARGET',
  class: 'failed_precondition',
  area: 'replication',
  message: (a) => `Cannot switch over: ${a.reason}.`,
  hint: () => 'Run `magflock replica list` to see which replicas are streaming, then `magflock switchover --to NAME`.',
})

export const FAILOVER_REFUSED = defineError<{ sentence: string }>({
  code: 'E_FAILOVER_REFUSED',
  class: 'failed_precondition',
  area: 'replication',
  message: (a) => `Failover refused: ${a.sentence}.`,
  hint: () => 'Read the reason above; `magflock failover --to NAME --force` promotes a named replica even if it may miss writes.',
})

export const REPLICA_BACKUP_UNUSABLE = defineError<{ id: string; reason: string }>({
  code: 'E_REPLICA_BACKUP_UNUSABLE',
  class: 'failed_precondition',
  area: 'replication',
  message: (a) => `Backup ${a.id} cannot seed a replica: ${a.reason}.`,
  hint: () =>
    'Take a fresh physical backup (`magflock backup create --type physical`) and retry, or clone from the primary instead: `magflock replica add NAME` (without --from-backup).',
})

export const REPLICA_DIR_EXISTS = defineError<{ name: string; dir: string }>({
  code: 'E_REPLICA_DIR_EXISTS',
  class: 'already_exists',
  area: 'replication',
  message: (a) => `${a.dir} already holds a data directory, and "${a.name}" is not a member of this flock.`,
  hint: () =>
    'If it is a replica that topology.json lost, `magflock doctor --repair` adopts it; otherwise pick another name or move that directory away.',
})
