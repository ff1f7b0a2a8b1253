import type { MagflockConfig } from '../config/schema.js'

/**
 * postgresql.conf settings of every flock instance: the operator's postgres.settings, with
 * wal_level = logical underneath when realtime is enabled (replicas too, so a promoted one can
 * host the realtime slot). An explicit postgres.settings.wal_level still wins, and realtime then
 * refuses to stream with E_REALTIME_WAL_LEVEL in its health.
 */
export function instanceSettings(cfg: MagflockConfig): Record<string, string | number | boolean> {
  return cfg.realtime.enabled ? { wal_level: 'logical', ...cfg.postgres.settings } : cfg.postgres.settings
}
