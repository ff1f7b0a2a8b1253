import { isIP } from 'node:net'
import path from 'node:path'
import { z } from 'zod'
import type { MagflockConfig } from '../config/schema.js'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { parseEndpoints } from './endpoints.js'
import { DEFAULT_LEASE_MS } from './leader-view.js'
import { NODE_FLAGS_INCOMPLETE, NODE_LISTEN_INVALID, NODE_NAME_INVALID, NODE_SETTINGS_CONFLICT } from './errors.js'

/**
 * What makes a kernel a node of a multi-host flock: the etcd members, its node name and the
 * address the other nodes reach it at. `magflock up --etcd … --node … --listen …` (first node)
 * and `magflock node join …` write them once to `<state>/cluster.json`; every later boot of
 * that state directory (a plain `magflock up`, a systemd restart) reads them, so a restarted
 * kernel is the same node. No file: a one-host flock, exactly as before.
 */
export const NODE_NAME = /^[a-z][a-z0-9_]{0,39}$/

export const ClusterSettings = z.object({
  etcd: z.array(z.string()).min(1),
  node: z.string().regex(NODE_NAME),
  listen: z.string(),
  /** How the node got its instance: it initialised the primary, or cloned the leader. */
  bootstrap: z.enum(['primary', 'replica']),
  mode: z.enum(['sync', 'async']).default('sync'),
  /**
   * What this node's instance is as a standby (`node join --sync|--async`): only a `sync` one
   * may become the flock's sync standby, so only it can be promoted without losing a commit.
   */
  standby: z.enum(['sync', 'async']).default('sync'),
  ttlMs: z.number().int().min(1000).default(DEFAULT_LEASE_MS),
  marginMs: z.number().int().min(100).default(1000),
  loopMs: z.number().int().min(50).default(250),
})
export type ClusterSettings = z.infer<typeof ClusterSettings>

export function clusterSettingsFile(stateRoot: string): string {
  return path.join(stateRoot, 'cluster.json')
}

export async function readClusterSettings(stateRoot: string): Promise<ClusterSettings | undefined> {
  return readJsonFile(clusterSettingsFile(stateRoot), (v) => ClusterSettings.parse(v))
}

/** The local instance of a node: one per node, named after it. */
export function nodeInstanceName(node: string): string {
  return `${node}_1`
}

export interface NodeFlags {
  etcd?: string | undefined
  node?: string | undefined
  listen?: string | undefined
  /** Leader lease TTL in seconds (only with the three above). */
  ttl?: number | undefined
}

/** Validates the three node flags (all or none); undefined when none was given. */
export function parseNodeFlags(f: NodeFlags): { etcd: string[]; node: string; listen: string; ttlMs?: number } | undefined {
  const given = [f.etcd, f.node, f.listen, f.ttl].filter((v) => v !== undefined)
  if (given.length === 0) return undefined
  const missing = (['etcd', 'node', 'listen'] as const).filter((k) => f[k] === undefined).map((k) => `--${k}`)
  if (missing.length > 0) throw NODE_FLAGS_INCOMPLETE({ missing: missing.join(', ') })
  const etcd = parseEndpoints(f.etcd as string)
  const node = f.node as string
  if (!NODE_NAME.test(node)) throw NODE_NAME_INVALID({ name: node })
  const listen = f.listen as string
  if (isIP(listen) === 0 || listen.startsWith('127.') || listen === '0.0.0.0' || listen === '::' || listen === '::1') throw NODE_LISTEN_INVALID({ listen })
  return { etcd, node, listen, ...(f.ttl !== undefined ? { ttlMs: f.ttl * 1000 } : {}) }
}

/**
 * Records the node settings before the kernel starts. The same settings again are fine (an
 * `up` repeated after a restart); different ones on a state directory that already is a node
 * are refused: a node never changes identity in place.
 */
export async function saveClusterSettings(stateRoot: string, asked: { etcd: string[]; node: string; listen: string; ttlMs?: number; standby?: 'sync' | 'async' }, bootstrap: 'primary' | 'replica'): Promise<ClusterSettings> {
  const cur = await readClusterSettings(stateRoot)
  if (cur) {
    if (cur.node !== asked.node) throw NODE_SETTINGS_CONFLICT({ key: 'node', current: cur.node, asked: asked.node })
    if (cur.listen !== asked.listen) throw NODE_SETTINGS_CONFLICT({ key: 'listen', current: cur.listen, asked: asked.listen })
    if (cur.etcd.join(',') !== asked.etcd.join(',')) throw NODE_SETTINGS_CONFLICT({ key: 'etcd', current: cur.etcd.join(','), asked: asked.etcd.join(',') })
    if (asked.standby !== undefined && asked.standby !== cur.standby) throw NODE_SETTINGS_CONFLICT({ key: 'standby', current: cur.standby, asked: asked.standby })
    if (asked.ttlMs !== undefined && asked.ttlMs !== cur.ttlMs) throw NODE_SETTINGS_CONFLICT({ key: 'ttl', current: `${cur.ttlMs / 1000} s`, asked: `${asked.ttlMs / 1000} s` })
    return cur
  }
  const next = ClusterSettings.parse({ ...asked, bootstrap })
  await writeJsonAtomic(clusterSettingsFile(stateRoot), next, 0o600)
  return next
}

/** The config a node's kernel runs with: Postgres also listens on the node's address. */
export function withNodeListen(config: MagflockConfig, s: ClusterSettings | undefined): MagflockConfig {
  if (!s || config.postgres.listen.includes(s.listen)) return config
  return { ...config, postgres: { ...config.postgres, listen: [...config.postgres.listen, s.listen] } }
}

/** A node's lease settings, as cluster.json holds them and its member record publishes them. */
export interface LeaseSettings {
  node: string
  ttlMs: number
  marginMs: number
}

/**
 * The first node whose lease settings are unsafe beside `self`'s, or undefined. A taker swaps
 * the leader key no sooner than its own lease after the last heartbeat it saw, and the holder
 * stops writing at its own lease minus its margin: safe iff, for every ordered pair, the
 * taker's lease ≥ the holder's lease − the holder's margin (docs/multi-host.md).
 */
export function leaseConflict(self: LeaseSettings, others: LeaseSettings[]): LeaseSettings | undefined {
  return others.find((o) => o.node !== self.node && (self.ttlMs < o.ttlMs - o.marginMs || o.ttlMs < self.ttlMs - self.marginMs))
}
