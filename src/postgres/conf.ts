import path from 'node:path'
import { INVALID_SETTING } from './errors.js'

/**
 * The postgresql.conf fragment and pg_hba.conf MagFlock writes into every instance.
 *
 * Settings live in `<data>/magflock.conf`, pulled in by one `include_if_exists` line appended
 * to postgresql.conf. postgresql.auto.conf (ALTER SYSTEM) is read after it, so an operator's or
 * the replication code's ALTER SYSTEM still wins. The fragment is rewritten at every start,
 * because a data directory copied by pg_basebackup carries the primary's port and socket dir.
 */
export type SettingValue = string | number | boolean

/** Linux caps a Unix socket path at 107 bytes; Postgres adds "/.s.PGSQL.<port>" (+ ".lock"). */
export const MAX_SOCKET_DIR_BYTES = 100

export const INCLUDE_LINE = "include_if_exists = 'magflock.conf'\t# added by MagFlock"

export interface ConfInput {
  port: number
  instanceDir: string
  settings?: Record<string, SettingValue> | undefined
}

/** The socket directory, or '' (TCP only) when the instance dir is too long for a socket path. */
export function socketDirFor(instanceDir: string, port: number): string {
  const sock = path.join(instanceDir, `.s.PGSQL.${port}.lock`)
  return Buffer.byteLength(sock) < MAX_SOCKET_DIR_BYTES ? instanceDir : ''
}

/** Quotes a value as a postgresql.conf literal: numbers and booleans bare, strings in '…'. */
export function confValue(v: SettingValue): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off'
  if (typeof v === 'number') return String(v)
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/

/** MagFlock's defaults, then the operator's `postgres.settings` on top. */
export function magflockSettings(input: ConfInput): Record<string, SettingValue> {
  const base: Record<string, SettingValue> = {
    listen_addresses: '127.0.0.1',
    port: input.port,
    unix_socket_directories: socketDirFor(input.instanceDir, input.port),
    // The kernel redirects stderr into <instance>/postgres.log; no collector process.
    logging_collector: false,
    wal_level: 'replica',
    max_wal_senders: 10,
    max_replication_slots: 10,
    wal_keep_size: '256MB',
    // A replication slot whose consumer died (the WAL archiver, a removed replica) must not
    // fill the disk: past this the slot is invalidated and an alert fires instead.
    max_slot_wal_keep_size: '4GB',
    hot_standby: true,
    password_encryption: 'scram-sha-256',
    // ALTER ROLE … PASSWORD must never reach the log.
    log_statement: 'none',
  }
  return { ...base, ...(input.settings ?? {}) }
}

export function renderMagflockConf(input: ConfInput): string {
  const lines = ['# Written by MagFlock at every start; change postgres.settings in magflock.yaml instead.']
  for (const [k, v] of Object.entries(magflockSettings(input))) {
    if (!NAME.test(k)) throw INVALID_SETTING({ name: k })
    lines.push(`${k} = ${confValue(v)}`)
  }
  return lines.join('\n') + '\n'
}

/** Appends the include line once; returns the text unchanged when it is already there. */
export function withInclude(postgresqlConf: string): string {
  if (postgresqlConf.split('\n').some((l) => l.trim().startsWith("include_if_exists = 'magflock.conf'"))) return postgresqlConf
  const sep = postgresqlConf.endsWith('\n') || postgresqlConf === '' ? '' : '\n'
  return `${postgresqlConf}${sep}\n${INCLUDE_LINE}\n`
}

/** The replication role standbys log in as (src/replication/role.ts). */
export const REPLICATION_ROLE = 'magflock_replicator'

/**
 * Local socket and loopback TCP with SCRAM; replication connections on loopback only for the
 * replication role, and for the superuser, which the WAL archiver (pg_receivewal) and physical
 * backups (pg_basebackup) still use. Written at initdb: an existing flock keeps its file.
 */
export function renderPgHba(superuser: string): string {
  return [
    '# Written by MagFlock. TYPE  DATABASE  USER  ADDRESS  METHOD',
    'local   all          all                  scram-sha-256',
    'host    all          all   127.0.0.1/32   scram-sha-256',
    `host    replication  ${REPLICATION_ROLE}   127.0.0.1/32   scram-sha-256`,
    `host    replication  ${superuser}   127.0.0.1/32   scram-sha-256`,
    '',
  ].join('\n')
}
