import { existsSync } from 'node:fs'
import path from 'node:path'
import { isIP } from 'node:net'
import type { MagflockConfig } from '../config/schema.js'
import { REPLICATION_ROLE } from '../postgres/conf.js'
import { postgresTlsReady, tlsLayout } from './material.js'
import { TLS_REQUIRED } from './errors.js'

/**
 * Postgres on the network: which addresses it listens on, ssl = on with the node certificate,
 * the pg_hba lines for remote clients, and how a standby reaches a peer that is not local.
 *
 * One-host flocks are unchanged: postgres.listen defaults to 127.0.0.1, the pg_hba written at
 * initdb (loopback, SCRAM) stays as it is, and no managed block is added.
 */
export const LOOPBACK = '127.0.0.1'

/** postgres.listen with 127.0.0.1 first (the kernel, tools and loopback replicas use it). */
export function listenAddresses(cfg: MagflockConfig): string[] {
  return [...new Set([LOOPBACK, ...cfg.postgres.listen])]
}

/** Addresses beyond 127.0.0.1: each one is reachable by other hosts (or, in tests, by 127.0.0.x peers). */
export function remoteAddresses(cfg: MagflockConfig): string[] {
  return listenAddresses(cfg).filter((a) => a !== LOOPBACK)
}

/** Refuses a flock that would listen beyond 127.0.0.1 (Postgres or the control API) without TLS. */
export function assertTlsForNetwork(cfg: MagflockConfig, hasTls: boolean): void {
  if (hasTls) return
  const pg = remoteAddresses(cfg)
  if (pg.length > 0) throw TLS_REQUIRED({ addresses: pg, key: 'postgres.listen' })
  if (cfg.api.listen) throw TLS_REQUIRED({ addresses: [cfg.api.listen], key: 'api.listen' })
}

/** postgresql.conf settings for the network and TLS; postgres.settings still win over them. */
export function postgresNetworkSettings(cfg: MagflockConfig, stateRoot: string): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = { listen_addresses: listenAddresses(cfg).join(',') }
  if (postgresTlsReady(stateRoot)) {
    const l = tlsLayout(stateRoot)
    Object.assign(out, { ssl: true, ssl_cert_file: l.pgCert, ssl_key_file: l.pgKey, ssl_ca_file: l.pgCa, ssl_min_protocol_version: 'TLSv1.2' })
  }
  return out
}

export const HBA_BEGIN = '# BEGIN MagFlock network access (rewritten at every start from postgres.listen)'
export const HBA_END = '# END MagFlock network access'

/**
 * The managed pg_hba block for remote access: TLS + SCRAM only, replication only for the
 * replication role (never the superuser), and an explicit reject of anything else from the
 * network (no plaintext, no other method). Empty when Postgres listens on 127.0.0.1 only.
 */
export function remoteHbaBlock(remote: string[]): string[] {
  if (remote.length === 0) return []
  return [
    HBA_BEGIN,
    `hostssl replication  ${REPLICATION_ROLE}  0.0.0.0/0  scram-sha-256`,
    `hostssl replication  ${REPLICATION_ROLE}  ::/0       scram-sha-256`,
    'hostssl all          all                  0.0.0.0/0  scram-sha-256',
    'hostssl all          all                  ::/0       scram-sha-256',
    'host    all          all                  0.0.0.0/0  reject',
    'host    all          all                  ::/0       reject',
    'host    replication  all                  0.0.0.0/0  reject',
    'host    replication  all                  ::/0       reject',
    HBA_END,
  ]
}

/**
 * pg_hba.conf with the managed block replaced (or removed). Lines above it (the loopback rules
 * written at initdb, and the operator's own edits) are kept and still match first.
 */
export function withRemoteHba(current: string, remote: string[]): string {
  const lines = current.split('\n')
  const b = lines.indexOf(HBA_BEGIN)
  const e = lines.indexOf(HBA_END)
  const kept = b >= 0 && e > b ? [...lines.slice(0, b), ...lines.slice(e + 1)] : lines
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop()
  const block = remoteHbaBlock(remote)
  return [...kept, ...block, ''].join('\n')
}

export interface ReplicationPeer {
  host: string
  port: number
}

/**
 * libpq options for a replication connection (pg_basebackup, primary_conninfo, pg_rewind) to a
 * peer: on 127.0.0.1 as today; to any other address over TLS with sslmode=verify-full against
 * the flock CA (Postgres' copy, readable by the Postgres OS user that runs the walreceiver).
 */
export function replicationConnOptions(peer: ReplicationPeer, stateRoot: string, user = REPLICATION_ROLE): Record<string, string> {
  const base: Record<string, string> = { host: peer.host, port: String(peer.port), user }
  if (peer.host === LOOPBACK || peer.host === 'localhost') return base
  if (isIP(peer.host) === 0 && !/^[a-z0-9.-]+$/i.test(peer.host)) return base
  // A kernel never listens beyond 127.0.0.1 without certificates (E_TLS_REQUIRED at boot), so a
  // missing CA here means a node without MagFlock's TLS (the etcd agent, docs/multi-host.md).
  const ca = tlsLayout(stateRoot).pgCa
  if (!existsSync(ca)) return base
  return { ...base, sslmode: 'verify-full', sslrootcert: ca }
}

/** The same options as a conninfo string ("host=… port=… sslmode=verify-full …"), values quoted. */
export function conninfoOf(opts: Record<string, string>): string {
  return Object.entries(opts)
    .map(([k, v]) => `${k}='${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`)
    .join(' ')
}

/** An instance dir is <state>/instances/<name>: the state root its TLS files live under. */
export function stateRootOfInstanceDir(instanceDir: string): string {
  return path.dirname(path.dirname(instanceDir))
}

/**
 * libpq environment for a replication tool (pg_basebackup, pg_rewind) reaching `peerHost`:
 * nothing for a local peer; verify-full against the flock CA otherwise.
 */
export function replicationSslEnv(peerHost: string, instanceDir: string): Record<string, string> {
  const o = replicationConnOptions({ host: peerHost, port: 0 }, stateRootOfInstanceDir(instanceDir))
  return o.sslmode && o.sslrootcert ? { PGSSLMODE: o.sslmode, PGSSLROOTCERT: o.sslrootcert } : {}
}

/** The same as primary_conninfo words ("sslmode=verify-full sslrootcert=…"), or none for a local peer. */
export function replicationSslConninfo(peerHost: string, instanceDir: string): string[] {
  const e = replicationSslEnv(peerHost, instanceDir)
  return e.PGSSLMODE && e.PGSSLROOTCERT ? [`sslmode=${e.PGSSLMODE}`, `sslrootcert=${e.PGSSLROOTCERT}`] : []
}
