import { Etcd3, EtcdLeaseInvalidError, type Lease, type Watcher } from 'etcd3'
import type { Leadership } from '../replication/leadership.js'
import { INVALID_ETCD_ENDPOINT, STORE_CONFLICT, STORE_CORRUPT, STORE_UNAVAILABLE } from './errors.js'
import {
  HISTORY_MAX,
  parseDoc,
  type ConfigOverrides,
  type DesiredDoc,
  type FailoverRecord,
  type FlockStore,
  type MemberDoc,
  type StatusDoc,
  type StoreKey,
  type TopologyDoc,
} from './store.js'

/**
 * The flock store on etcd v3 (the `etcd3` client; MagFlock implements no consensus itself).
 * Every document is one JSON value under `/magflock/<flock>/<key>`; updates are
 * compare-and-set transactions on the key's mod revision, retried on a conflict.
 *
 * Calls carry a deadline (`callTimeoutMs`): a node cut off from the etcd majority gets
 * E_FLOCK_STORE_UNAVAILABLE quickly instead of hanging, and callers then do nothing
 * destructive (docs/multi-host.md, "etcd unreachable").
 */
export interface EtcdStoreOptions {
  endpoints: string[]
  flock: string
  /** Deadline of one etcd call. Leadership renewals use the shorter of this and TTL/3. */
  callTimeoutMs?: number
  clock?: () => number
}

export function parseEndpoints(list: string): string[] {
  const out = list.split(',').map((s) => s.trim()).filter(Boolean)
  if (out.length === 0) throw INVALID_ETCD_ENDPOINT({ endpoint: list })
  for (const e of out) {
    let u: URL
    try {
      u = new URL(e)
    } catch {
      throw INVALID_ETCD_ENDPOINT({ endpoint: e })
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.port || u.pathname.length > 1) throw INVALID_ETCD_ENDPOINT({ endpoint: e })
  }
  return out
}

export class EtcdFlockStore implements FlockStore {
  readonly kind = 'etcd' as const
  readonly client: Etcd3
  readonly prefix: string
  private readonly timeoutMs: number
  private readonly watchers = new Set<Watcher>()

  constructor(private readonly o: EtcdStoreOptions) {
    this.timeoutMs = o.callTimeoutMs ?? 2000
    this.prefix = `/magflock/${o.flock}/`
    this.client = new Etcd3({
      hosts: o.endpoints,
      dialTimeout: this.timeoutMs,
      // Streams (watch, keep-alive) live long; unary calls get the deadline.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
    })
  }

  key(k: StoreKey | 'leader'): string {
    return this.prefix + k
  }

  unavailable(err: unknown): Error {
    return STORE_UNAVAILABLE({ endpoints: this.o.endpoints.join(','), reason: (err as Error).message?.split('\n')[0] ?? String(err) })
  }

  private async readRaw(key: StoreKey): Promise<{ value: unknown; rev: string }> {
    let res
    try {
      res = await this.client.get(this.key(key)).exec()
    } catch (err) {
      throw this.unavailable(err)
    }
    const kv = res.kvs[0]
    if (!kv) return { value: parseDoc(key, undefined), rev: '0' }
    try {
      return { value: parseDoc(key, JSON.parse(kv.value.toString('utf8'))), rev: kv.mod_revision }
    } catch (err) {
      throw STORE_CORRUPT({ key: this.key(key), reason: (err as Error).message.slice(0, 200) })
    }
  }

  private async read<T>(key: StoreKey): Promise<T> {
    return (await this.readRaw(key)).value as T
  }

  private async update<T>(key: StoreKey, fn: (v: T) => T): Promise<T> {
    const attempts = 20
    for (let i = 0; i < attempts; i++) {
      const cur = await this.readRaw(key)
      const next = parseDoc(key, fn(cur.value as T)) as T
      let ok: boolean
      try {
        const r = await this.client
          .if(this.key(key), 'Mod', '==', cur.rev)
          .then(this.client.put(this.key(key)).value(JSON.stringify(next)))
          .commit()
        ok = r.succeeded
      } catch (err) {
        throw this.unavailable(err)
      }
      if (ok) return next
    }
    throw STORE_CONFLICT({ key: this.key(key), attempts })
  }

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
  /** A plain put: only its node writes a member record, so there is nothing to compare. */
  async putMember(m: MemberDoc): Promise<void> {
    try {
      await this.client.put(this.key(`member/${m.node}`)).value(JSON.stringify(m))
    } catch (err) {
      throw this.unavailable(err)
    }
  }

  watch(key: StoreKey | 'leader', cb: () => void): () => void {
    let w: Watcher | undefined
    let closed = false
    void this.client
      .watch()
      .key(this.key(key as StoreKey))
      .create()
      .then((watcher) => {
        if (closed) return void watcher.cancel()
        w = watcher
        this.watchers.add(watcher)
        watcher.on('put', () => cb())
        watcher.on('delete', () => cb())
        // A watch stream that reconnects may have missed events: tell the caller to re-read.
        watcher.on('connected', () => cb())
        watcher.on('error', () => undefined)
      })
      .catch(() => undefined)
    return () => {
      closed = true
      if (w) {
        this.watchers.delete(w)
        void w.cancel().catch(() => undefined)
      }
    }
  }

  leadership(holderId: string): EtcdLeadership {
    return new EtcdLeadership(this, holderId, this.o.clock ?? Date.now, this.timeoutMs)
  }

  async close(): Promise<void> {
    for (const w of this.watchers) await w.cancel().catch(() => undefined)
    this.watchers.clear()
    this.client.close()
  }
}

/**
 * The leader key on etcd: a lease with a TTL plus a create-if-absent transaction binding
 * `<prefix>leader` = holder to it; `renew` is one lease keep-alive; `release` revokes the
 * lease (etcd deletes the key with it).
 *
 * Safety (docs/multi-host.md, "Leadership and self-demotion"): `validUntil()` is the moment,
 * on this host's monotonic-enough clock, until which no other holder can possibly hold the
 * key: the *send* time of the last successful grant or keep-alive plus the TTL. etcd starts
 * the lease's TTL when it *receives* that request, which is later, and an etcd leader change
 * only ever extends leases. A primary that demotes itself before `validUntil()` therefore
 * stops writing before any replica can acquire the key.
 *
 * The holder id is the node name, stable across kernel restarts: a kernel that restarts on the
 * node holding the key takes the key over (compare on its value) instead of waiting for it to
 * expire, so killing a kernel does not cause a failover (Patroni does the same).
 */
export class EtcdLeadership implements Leadership {
  private lease: Lease | undefined
  private ttlS = 5
  private until = 0
  private readonly key: string

  constructor(
    private readonly store: EtcdFlockStore,
    readonly holderId: string,
    private readonly clock: () => number,
    private readonly timeoutMs: number,
  ) {
    this.key = store.key('leader')
  }

  /** Until when (this host's clock) the lease is certainly ours; 0 when we hold none. */
  validUntil(): number {
    return this.lease ? this.until : 0
  }

  get ttlMs(): number {
    return this.ttlS * 1000
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + Math.min(this.timeoutMs, Math.max(200, (this.ttlS * 1000) / 3)) }
  }

  async acquire(ttlMs: number): Promise<boolean> {
    if (this.lease) return this.renew()
    // etcd TTLs are whole seconds; rounding up never shortens what the caller asked for.
    this.ttlS = Math.max(1, Math.ceil(ttlMs / 1000))
    const c = this.store.client
    const sentAt = this.clock()
    const lease = c.lease(this.ttlS, { autoKeepAlive: false })
    lease.on('lost', () => undefined)
    let leaseId: string
    try {
      leaseId = await lease.grant()
    } catch (err) {
      lease.release()
      throw this.store.unavailable(err)
    }
    try {
      const created = await c
        .if(this.key, 'Create', '==', 0)
        .then(c.put(this.key).value(this.holderId).lease(leaseId))
        .commit()
      let ok = created.succeeded
      if (!ok) {
        // Ours from a previous kernel on this node: take it over onto the new lease.
        const took = await c
          .if(this.key, 'Value', '==', this.holderId)
          .then(c.put(this.key).value(this.holderId).lease(leaseId))
          .commit()
        ok = took.succeeded
      }
      if (!ok) {
        await lease.revoke(this.deadline()).catch(() => undefined)
        return false
      }
      this.lease = lease
      this.until = sentAt + this.ttlS * 1000
      return true
    } catch (err) {
      await lease.revoke(this.deadline()).catch(() => undefined)
      throw this.store.unavailable(err)
    }
  }

  /** False when the lease is gone or etcd did not confirm in time (see validUntil()). */
  async renew(): Promise<boolean> {
    const lease = this.lease
    if (!lease) return false
    const sentAt = this.clock()
    try {
      const res = await lease.keepaliveOnce(this.deadline())
      if (Number(res.TTL) <= 0) {
        this.drop()
        return false
      }
      if (this.lease === lease) this.until = sentAt + this.ttlS * 1000
      return true
    } catch (err) {
      // etcd says the lease is gone: certain. Anything else (timeout): we just do not know.
      if (err instanceof EtcdLeaseInvalidError) this.drop()
      return false
    }
  }

  private drop(): void {
    this.lease?.release()
    this.lease = undefined
    this.until = 0
  }

  async release(): Promise<void> {
    const lease = this.lease
    this.lease = undefined
    this.until = 0
    if (lease) await lease.revoke(this.deadline()).catch(() => lease.release())
  }

  async current(): Promise<string | undefined> {
    try {
      return (await this.store.client.get(this.key).string()) ?? undefined
    } catch (err) {
      throw this.store.unavailable(err)
    }
  }

  watch(cb: (holder: string | undefined) => void): () => void {
    let last: string | undefined | null = null
    const look = () => {
      void this.current().then(
        (h) => {
          if (h !== last) {
            last = h
            cb(h)
          }
        },
        () => undefined,
      )
    }
    look()
    return this.store.watch('leader' as StoreKey, look)
  }
}
