import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { FileLeadership, type Leadership } from '../replication/leadership.js'

/**
 * Flock-wide state that every node must agree on, behind one interface (Patroni's `dcs/`):
 *
 *  - the topology: which node runs which instance, in which role (`TopologyDoc`);
 *  - desired state per node: what an operator asked a node's kernel to do (add a replica,
 *    switch over), written by whichever kernel took the request and watched by the node that
 *    must act, so cross-node requests need no kernel-to-kernel RPC;
 *  - desired config overrides (`magflock config set` on a multi-host flock);
 *  - the leader key (through `leadership()`), and the failover history.
 *
 * Two implementations: `FileFlockStore` (the state directory; one-host flocks, no etcd, exactly
 * the behaviour they had) and `EtcdFlockStore` (etcd v3, keys under `/magflock/<flock>/`).
 *
 * Contract:
 *  - `update*` are compare-and-set loops: `fn` sees the current document and returns the next
 *    one; a concurrent writer makes the store call `fn` again on the newer document. `fn` must
 *    be pure (it may run more than once).
 *  - reads never block for long: an unreachable store rejects with E_FLOCK_STORE_UNAVAILABLE
 *    within its call deadline, and the caller must then do nothing destructive.
 *  - `watch` calls back after every change of the watched document (and may call back
 *    spuriously); it returns an unsubscribe function.
 */
export const NodeRecord = z.object({
  name: z.string(),
  /** The address other nodes and clients reach this node's Postgres at (`postgres.listen`). */
  address: z.string(),
  /** Kernel's process id and start time on that node, for `node list`. */
  kernel: z.object({ pid: z.number(), startedAt: z.string(), version: z.string().optional() }).optional(),
  joinedAt: z.string(),
})
export type NodeRecord = z.infer<typeof NodeRecord>

export const InstanceRecord = z.object({
  name: z.string(),
  node: z.string(),
  role: z.enum(['primary', 'replica', 'fenced']),
  port: z.number(),
  sync: z.boolean().default(false),
})
export type InstanceRecord = z.infer<typeof InstanceRecord>

export const TopologyDoc = z.object({
  nodes: z.record(z.string(), NodeRecord).default({}),
  instances: z.record(z.string(), InstanceRecord).default({}),
})
export type TopologyDoc = z.infer<typeof TopologyDoc>

/** A request for one node's kernel (`replica add --node b`, `switchover --to b-1`). */
export const DesiredOp = z.discriminatedUnion('op', [
  z.object({ op: z.literal('replica-add'), id: z.string(), name: z.string(), sync: z.boolean(), requestedAt: z.string() }),
  z.object({ op: z.literal('switchover'), id: z.string(), to: z.string(), requestedAt: z.string() }),
])
export type DesiredOp = z.infer<typeof DesiredOp>

export const DesiredDoc = z.object({
  ops: z.array(DesiredOp).default([]),
  /** Outcome per op id, written by the acting node (the requester polls it). */
  results: z.record(z.string(), z.object({ ok: z.boolean(), sentence: z.string(), at: z.string(), detail: z.record(z.string(), z.unknown()).optional() })).default({}),
})
export type DesiredDoc = z.infer<typeof DesiredDoc>

export const FailoverRecord = z.object({
  from: z.string(),
  to: z.string(),
  reason: z.string(),
  at: z.string(),
  automatic: z.boolean(),
  durationMs: z.number().optional(),
})
export type FailoverRecord = z.infer<typeof FailoverRecord>

/**
 * Leader bookkeeping every node reads before acting: who led last (a fenced node that was the
 * last leader demoted itself and may take the key back; otherwise it was replaced and must
 * rejoin), and in sync mode the one standby that may be promoted. A primary names a standby
 * here *before* it makes it synchronous, and a promotion clears it, as Patroni's /sync key:
 * only a standby that confirmed every acknowledged commit may become the primary.
 */
export const StatusDoc = z.object({
  lastLeader: z.string().optional(),
  syncStandby: z.string().nullable().default(null),
  at: z.string().optional(),
})
export type StatusDoc = z.infer<typeof StatusDoc>

/** What a node publishes about its local instance every tick (candidacy, `node list`). */
export const MemberDoc = z.object({
  node: z.string(),
  instance: z.string(),
  role: z.enum(['primary', 'replica', 'fenced', 'down']),
  /** Replay (replica) or current (primary) WAL position as Postgres prints it (`0/3000060`). */
  lsn: z.string().optional(),
  lagBytes: z.number().optional(),
  sentence: z.string().optional(),
  at: z.number(),
  /**
   * The node's lease and safety margin (cluster.json), published so that a node starting with
   * settings that would break the lease's safety against it is refused (leaseConflict).
   * Absent from records of builds before them.
   */
  ttlMs: z.number().optional(),
  marginMs: z.number().optional(),
})
export type MemberDoc = z.infer<typeof MemberDoc>

export const ConfigOverrides = z.record(z.string(), z.unknown())
export type ConfigOverrides = z.infer<typeof ConfigOverrides>

/** Keys a store holds; the etcd store maps them to `/magflock/<flock>/<key>`. */
export type StoreKey = 'topology' | 'config' | 'history' | 'status' | `desired/${string}` | `member/${string}`

export interface FlockStore {
  readonly kind: 'file' | 'etcd'
  topology(): Promise<TopologyDoc>
  updateTopology(fn: (t: TopologyDoc) => TopologyDoc): Promise<TopologyDoc>
  desired(node: string): Promise<DesiredDoc>
  updateDesired(node: string, fn: (d: DesiredDoc) => DesiredDoc): Promise<DesiredDoc>
  configOverrides(): Promise<ConfigOverrides>
  updateConfigOverrides(fn: (c: ConfigOverrides) => ConfigOverrides): Promise<ConfigOverrides>
  /** Newest last; the store keeps at most `HISTORY_MAX` records. */
  history(): Promise<FailoverRecord[]>
  recordFailover(r: FailoverRecord): Promise<void>
  status(): Promise<StatusDoc>
  updateStatus(fn: (s: StatusDoc) => StatusDoc): Promise<StatusDoc>
  /** A node's last published member record (null: never published). */
  member(node: string): Promise<MemberDoc | null>
  putMember(m: MemberDoc): Promise<void>
  watch(key: StoreKey, cb: () => void): () => void
  /** The flock's leader key, held by `holderId`. */
  leadership(holderId: string): Leadership
  close(): Promise<void>
}

export const HISTORY_MAX = 100

/** The schema each key's document follows (both stores parse what they read with it). */
export function parseDoc(key: StoreKey, v: unknown): unknown {
  if (key === 'topology') return TopologyDoc.parse(v ?? {})
  if (key === 'config') return ConfigOverrides.parse(v ?? {})
  if (key === 'history') return z.array(FailoverRecord).parse(v ?? [])
  if (key === 'status') return StatusDoc.parse(v ?? {})
  if (key.startsWith('member/')) return v === undefined || v === null ? null : MemberDoc.parse(v)
  return DesiredDoc.parse(v ?? {})
}

/**
 * The typed documents of a flock store over one read and one read-modify-write per key: each
 * store (file, etcd) supplies only those two and how a member record is written.
 */
export abstract class DocFlockStore {
  protected abstract read<T>(key: StoreKey): Promise<T>
  protected abstract update<T>(key: StoreKey, fn: (v: T) => T): Promise<T>

  topology(): Promise<TopologyDoc> {
    return this.read('topology')
  }
  updateTopology(fn: (t: TopologyDoc) => TopologyDoc): Promise<TopologyDoc> {
    return this.update('topology', fn)
  }
  desired(node: string): Promise<DesiredDoc> {
    return this.read(`desired/${node}`)
  }
  updateDesired(node: string, fn: (d: DesiredDoc) => DesiredDoc): Promise<DesiredDoc> {
    return this.update(`desired/${node}`, fn)
  }
  configOverrides(): Promise<ConfigOverrides> {
    return this.read('config')
  }
  updateConfigOverrides(fn: (c: ConfigOverrides) => ConfigOverrides): Promise<ConfigOverrides> {
    return this.update('config', fn)
  }
  history(): Promise<FailoverRecord[]> {
    return this.read('history')
  }
  async recordFailover(r: FailoverRecord): Promise<void> {
    await this.update<FailoverRecord[]>('history', (h) => [...h, r].slice(-HISTORY_MAX))
  }
  status(): Promise<StatusDoc> {
    return this.read('status')
  }
  updateStatus(fn: (s: StatusDoc) => StatusDoc): Promise<StatusDoc> {
    return this.update('status', fn)
  }
  member(node: string): Promise<MemberDoc | null> {
    return this.read(`member/${node}`)
  }
}

/**
 * The state directory as a flock store: one JSON file per key under `<state>/flock/`, written
 * atomically, and the existing file lease. Only one kernel runs per state directory (the
 * kernel lock), so a read-modify-write needs no further mutex; `watch` polls the file's mtime.
 */
export class FileFlockStore extends DocFlockStore implements FlockStore {
  readonly kind = 'file' as const
  private readonly dir: string

  constructor(private readonly stateDir: string) {
    super()
    this.dir = path.join(stateDir, 'flock')
  }

  private file(key: StoreKey): string {
    return path.join(this.dir, `${key.replace('/', '-')}.json`)
  }

  protected async read<T>(key: StoreKey): Promise<T> {
    return ((await readJsonFile(this.file(key), (v) => parseDoc(key, v))) ?? parseDoc(key, undefined)) as T
  }

  protected async update<T>(key: StoreKey, fn: (v: T) => T): Promise<T> {
    const next = parseDoc(key, fn(await this.read<T>(key))) as T
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
    await writeJsonAtomic(this.file(key), next)
    return next
  }

  async putMember(m: MemberDoc): Promise<void> {
    await this.update(`member/${m.node}`, () => m)
  }

  watch(key: StoreKey, cb: () => void, intervalMs = 500): () => void {
    let last = -1
    const t = setInterval(() => {
      void fsp.stat(this.file(key)).then(
        (st) => {
          if (st.mtimeMs !== last) {
            if (last !== -1) cb()
            last = st.mtimeMs
          }
        },
        () => undefined,
      )
    }, intervalMs)
    t.unref()
    return () => clearInterval(t)
  }

  leadership(holderId: string): Leadership {
    // The same file the failover monitor has always used, so a one-host flock is unchanged.
    return new FileLeadership(path.join(this.stateDir, 'leader.json'), holderId)
  }

  async close(): Promise<void> {}
}
