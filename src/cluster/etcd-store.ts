import { noop } from 'cockatiel'
import { Etcd3, EtcdLeaseInvalidError, type Watcher } from 'etcd3'
import type { Leadership } from '../replication/leadership.js'
import { STORE_CONFLICT, STORE_CORRUPT, STORE_UNAVAILABLE } from './errors.js'
import {
  DocFlockStore,
  parseDoc,
  type FlockStore,
  type MemberDoc,
  type StoreKey,
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

// Kept here for existing importers; it lives in endpoints.ts (no etcd3 load to validate flags).
export { parseEndpoints } from './endpoints.js'

export class EtcdFlockStore extends DocFlockStore implements FlockStore {
  readonly kind = 'etcd' as const
  readonly client: Etcd3
  readonly prefix: string
  private readonly timeoutMs: number
  private readonly watchers = new Set<Watcher>()
  /** One client per member, tried in order starting with the last that answered (see call()). */
  private readonly perHost: Etcd3[]
  private preferred = 0

  constructor(private readonly o: EtcdStoreOptions) {
    super()
    this.timeoutMs = o.callTimeoutMs ?? 2000
    this.prefix = `/magflock/${o.flock}/`
    this.client = new Etcd3({
      hosts: o.endpoints,
      dialTimeout: this.timeoutMs,
      // Streams (watch, keep-alive) live long; unary calls get the deadline.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
    })
    // No fault handling inside these clients: call() and race() choose members and retry within
    // their deadlines. etcd3's default (a circuit breaker per host that opens for 5 s after
    // three recoverable errors, plus three retries) turned a one-second etcd leader election
    // into 5 s in which every member looked unreachable, and a healthy primary demoted itself.
    this.perHost = o.endpoints.map((e) => new Etcd3({ hosts: [e], dialTimeout: this.timeoutMs, faultHandling: { host: () => noop, global: noop } }))
  }

  /**
   * Runs `fn` against one member after another, starting with the last one that answered,
   * each attempt with its own deadline of `attemptMs`. The pooled client picks a member at
   * random per call: with one member cut off, a third of the calls would wait out a full
   * deadline, which is too slow for lease renewals. A member that answers stays preferred.
   */
  async call<T>(fn: (c: Etcd3, opts: { deadline: number }) => Promise<T>, attemptMs = this.timeoutMs): Promise<T> {
    let last: unknown
    const n = this.perHost.length
    const start = this.preferred
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n
      try {
        const r = await fn(this.perHost[i] as Etcd3, { deadline: Date.now() + attemptMs })
        this.preferred = i
        return r
      } catch (err) {
        // An answer from etcd (not a transport failure) is the answer: do not ask another member.
        if (err instanceof EtcdLeaseInvalidError) throw err
        last = err
      }
    }
    throw this.unavailable(last)
  }

  /**
   * Runs `fn` against every member at once and takes the first answer: for lease renewals,
   * where a member that is down or an etcd leader election in progress must not cost one
   * deadline per member in turn (sequential attempts could spend the whole safety margin).
   * An answer from etcd that the lease is invalid is final, whichever member gives it.
   */
  async race<T>(fn: (c: Etcd3, opts: { deadline: number }) => Promise<T>, attemptMs = this.timeoutMs): Promise<T> {
    const deadline = Date.now() + attemptMs
    return new Promise<T>((resolve, reject) => {
      let pending = this.perHost.length
      let settled = false
      this.perHost.forEach((c, i) => {
        fn(c, { deadline }).then(
          (r) => {
            if (settled) return
            settled = true
            this.preferred = i
            resolve(r)
          },
          (err: unknown) => {
            if (settled) return
            if (err instanceof EtcdLeaseInvalidError || --pending === 0) {
              settled = true
              reject(err instanceof EtcdLeaseInvalidError ? err : this.unavailable(err))
            }
          },
        )
      })
    })
  }

  key(k: StoreKey | 'leader'): string {
    return this.prefix + k
  }

  unavailable(err: unknown): Error {
    return STORE_UNAVAILABLE({ endpoints: this.o.endpoints.join(','), reason: (err as Error).message?.split('\n')[0] ?? String(err) })
  }

  private async readRaw(key: StoreKey): Promise<{ value: unknown; rev: string }> {
    const res = await this.call((c, opts) => c.get(this.key(key)).options(opts).exec())
    const kv = res.kvs[0]
    if (!kv) return { value: parseDoc(key, undefined), rev: '0' }
    try {
      return { value: parseDoc(key, JSON.parse(kv.value.toString('utf8'))), rev: kv.mod_revision }
    } catch (err) {
      throw STORE_CORRUPT({ key: this.key(key), reason: (err as Error).message.slice(0, 200) })
    }
  }

  protected async read<T>(key: StoreKey): Promise<T> {
    return (await this.readRaw(key)).value as T
  }

  protected async update<T>(key: StoreKey, fn: (v: T) => T): Promise<T> {
    const attempts = 20
    for (let i = 0; i < attempts; i++) {
      const cur = await this.readRaw(key)
      const next = parseDoc(key, fn(cur.value as T)) as T
      const r = await this.call((c, opts) =>
        c.if(this.key(key), 'Mod', '==', cur.rev).then(c.put(this.key(key)).value(JSON.stringify(next))).options(opts).commit(),
      )
      if (r.succeeded) return next
    }
    throw STORE_CONFLICT({ key: this.key(key), attempts })
  }

  /** A plain put: only its node writes a member record, so there is nothing to compare. */
  async putMember(m: MemberDoc): Promise<void> {
    await this.call((c, opts) => c.put(this.key(`member/${m.node}`)).value(JSON.stringify(m)).options(opts).exec())
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
    for (const c of this.perHost) c.close()
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
  /** The etcd lease id we hold (granted, and not known to be lost), or undefined. */
  private leaseId: string | undefined
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
    return this.leaseId ? this.until : 0
  }

  /** One attempt per member: short enough that trying every member fits in the margin. */
  private attemptMs(): number {
    return Math.min(this.timeoutMs, Math.max(150, (this.ttlS * 1000) / 8))
  }

  /**
   * A renewal asks every member at once (race), so it need not leave room for trying them in
   * turn: it may wait longer for a slow answer (a loaded machine, an etcd election), which still
   * counts from when it was sent. Only one renewal is in flight at a time.
   */
  private renewAttemptMs(): number {
    return Math.min(this.timeoutMs, Math.max(150, (this.ttlS * 1000) / 4))
  }

  async acquire(ttlMs: number): Promise<boolean> {
    if (this.leaseId) return this.renew()
    // etcd TTLs are whole seconds; rounding up never shortens what the caller asked for.
    this.ttlS = Math.max(1, Math.ceil(ttlMs / 1000))
    const sentAt = this.clock()
    const grant = await this.store.call((c, opts) => c.leaseClient.leaseGrant({ TTL: this.ttlS }, opts), this.attemptMs())
    const id = grant.ID
    const revoke = () => this.store.call((c, opts) => c.leaseClient.leaseRevoke({ ID: id }, opts), this.attemptMs()).catch(() => undefined)
    let ok: boolean
    try {
      ok = await this.store.call(async (c, opts) => {
        const created = await c.if(this.key, 'Create', '==', 0).then(c.put(this.key).value(this.holderId).lease(id)).options(opts).commit()
        if (created.succeeded) return true
        // Ours from a previous kernel on this node: take it over onto the new lease.
        const took = await c.if(this.key, 'Value', '==', this.holderId).then(c.put(this.key).value(this.holderId).lease(id)).options(opts).commit()
        return took.succeeded
      }, this.attemptMs())
    } catch (err) {
      await revoke()
      throw err
    }
    if (!ok) {
      await revoke()
      return false
    }
    this.leaseId = id
    this.until = sentAt + this.ttlS * 1000
    return true
  }

  /** False when the lease is gone or no member confirmed in time (see validUntil()). */
  async renew(): Promise<boolean> {
    const id = this.leaseId
    if (!id) return false
    const sentAt = this.clock()
    try {
      const ttl = await this.store.race(async (c, opts) => {
        const stream = await c.leaseClient.leaseKeepAlive(opts)
        try {
          return await new Promise<number>((resolve, reject) => {
            stream.on('data', (res: { TTL: string }) => resolve(Number(res.TTL)))
            stream.on('error', reject)
            stream.write({ ID: id })
          })
        } finally {
          stream.end()
        }
      }, this.renewAttemptMs())
      if (ttl <= 0) {
        // etcd answered: the lease expired or was revoked. Certain.
        if (this.leaseId === id) this.drop()
        return false
      }
      if (this.leaseId === id) this.until = sentAt + this.ttlS * 1000
      return true
    } catch {
      // No member answered in time: we just do not know. validUntil() still bounds us.
      return false
    }
  }

  private drop(): void {
    this.leaseId = undefined
    this.until = 0
  }

  async release(): Promise<void> {
    const id = this.leaseId
    this.drop()
    if (id) await this.store.call((c, opts) => c.leaseClient.leaseRevoke({ ID: id }, opts), this.attemptMs()).catch(() => undefined)
  }

  async current(): Promise<string | undefined> {
    return (await this.store.call((c, opts) => c.get(this.key).options(opts).string(), this.attemptMs())) ?? undefined
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
