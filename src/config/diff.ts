import { flatten } from './load.js'
import type { MagflockConfig } from './schema.js'

/**
 * Which changed keys a running kernel can apply live and which need a restart.
 *
 * Conservative by design: a key is live only when it is on the allow-list below; anything
 * unknown is reported as restart-required, so a reload never claims to have applied
 * something it did not.
 */
const LIVE_PREFIXES = [
  'kernel.logLevel',
  'kernel.restart.',
  'postgres.startTimeoutSeconds',
  'postgres.database',
  'migrations.',
  'backup.schedule',
  'backup.compression',
  'backup.encryptionKey',
  'replication.failover.',
  'pooler.readOnly.',

  // Read by extensions at each config:read call.
  'extensions',
  'extensions.',
]

/**
 * postgresql.conf parameters whose context is `postmaster`: they only take effect when the
 * server restarts. Everything else under postgres.settings is applied with pg_reload_conf().
 * (From pg_settings where context = 'postmaster', PostgreSQL 15, the ones people set.)
 */
export const POSTMASTER_SETTINGS = new Set([
  'archive_mode',
  'autovacuum_max_workers',
  'autovacuum_freeze_max_age',
  'bonjour',
  'cluster_name',
  'data_directory',
  'dynamic_shared_memory_type',
  'hba_file',
  'hot_standby',
  'huge_pages',
  'ident_file',
  'listen_addresses',
  'logging_collector',
  'max_connections',
  'max_files_per_process',
  'max_locks_per_transaction',
  'max_logical_replication_workers',
  'max_pred_locks_per_transaction',
  'max_prepared_transactions',
  'max_replication_slots',
  'max_wal_senders',
  'max_worker_processes',
  'old_snapshot_threshold',
  'port',
  'recovery_target',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_time',
  'recovery_target_xid',
  'recovery_target_timeline',
  'reserved_connections',
  'shared_buffers',
  'shared_memory_type',
  'shared_preload_libraries',
  'superuser_reserved_connections',
  'track_activity_query_size',
  'track_commit_timestamp',
  'unix_socket_directories',
  'unix_socket_group',
  'unix_socket_permissions',
  'wal_buffers',
  'wal_decode_buffer_size',
  'wal_level',
  'wal_log_hints',
])

export function isLiveKey(key: string): boolean {
  if (key.startsWith('postgres.settings.')) return !POSTMASTER_SETTINGS.has(key.slice('postgres.settings.'.length).toLowerCase())
  if (key === 'postgres.settings') return true
  return LIVE_PREFIXES.some((p) => (p.endsWith('.') ? key.startsWith(p) : key === p))
}

/** Changed leaf keys between two configs, split into live-applicable and restart-required. */
export function diffConfig(old: MagflockConfig, next: MagflockConfig): { live: string[]; restartRequired: string[] } {
  const a = new Map(flatten(old))
  const b = new Map(flatten(next))
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort()
  const live: string[] = []
  const restartRequired: string[] = []
  for (const k of keys) {
    if (JSON.stringify(a.get(k)) === JSON.stringify(b.get(k))) continue
    // An empty record flattens to its own key (postgres.settings = {}), a filled one to its
    // entries; the entries carry the change, so the record key itself is not reported.
    if (keys.some((o) => o.startsWith(k + '.'))) continue
    ;(isLiveKey(k) ? live : restartRequired).push(k)
  }
  return { live, restartRequired }
}
