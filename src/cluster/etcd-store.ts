import { noop } from 'cockatiel'
import { Etcd3, EtcdLeaseInvalidError, type Watcher } from 'etcd3'
import type { Leadership } from '../replication/leadership.js'
import { STORE_CONFLICT, STORE_CORRUPT, STORE_UNAVAILABLE } from './errors.js'
import { DEFAULT_LEASE_MS, LeaderView } from './leader-view.js'
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
   * With `hedgeMs` (writes: every member would commit one), the others are asked only when the
   * last member to answer fails or has not answered within `hedgeMs`.
   */
  async race<T>(fn: (c: Etcd3, opts: { deadline: number }) => Promise<T>, attemptMs = this.timeoutMs, hedgeMs?: number): Promise<T> {
    const deadline = Date.now() + attemptMs
    return new Promise<T>((resolve, reject) => {
      let pending = this.perHost.length
      let settled = false
      const first = this.preferred
      let others: NodeJS.Timeout | undefined
      let started = hedgeMs === undefined
      const startOthers = () => {
        if (started || settled) return
        started = true
        if (others) clearTimeout(others)
        this.perHost.forEach((_, i) => {
          if (i !== first) attempt(i)
        })
      }
      const attempt = (i: number) => {
        fn(this.perHost[i] as Etcd3, { deadline }).then(
          (r) => {
            if (settled) return
            settled = true
            if (others) clearTimeout(others)
            this.preferred = i
            resolve(r)
          },
          (err: unknown) => {
            if (settled) return
            if (err instanceof EtcdLeaseInvalidError || --pending === 0) {
              settled = true
              if (others) clearTimeout(others)
              reject(err instanceof EtcdLeaseInvalidError ? err : this.unavailable(err))
              return
            }
            if (i === first) startOthers()
          },
        )
      }
      if (hedgeMs === undefined) this.perHost.forEach((_, i) => attempt(i))
      else {
        attempt(first)
        others = setTimeout(startOthers, hedgeMs)
      }
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

  /**
   * Calls `cb` on every change of `key`, with the event (a put's value and mod revision, a
   * delete's revision), and with no event when the watch stream (re)connected and may have
   * missed some: the caller then re-reads.
   */
  watch(key: StoreKey | 'leader', cb: (ev?: { value: string | undefined; rev: string }) => void): () => void {
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
        watcher.on('put', (kv) => cb({ value: kv.value.toString('utf8'), rev: kv.mod_revision }))
        watcher.on('delete', (kv) => cb({ value: undefined, rev: kv.mod_revision }))
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

  /**
   * The leader key for `holderId`. `ttlMs` is the flock's lease duration (the same on every
   * node): how long a holder's key may go unchanged before another node treats it as gone.
   */
  leadership(holderId: string, opts: { ttlMs?: number } = {}): EtcdLeadership {
    return new EtcdLeadership(this, holderId, this.o.clock ?? Date.now, this.timeoutMs, opts.ttlMs ?? DEFAULT_LEASE_MS)
  }

  async close(): Promise<void> {
    for (const w of this.watchers) await w.cancel().catch(() => undefined)
    this.watchers.clear()
    this.client.close()
    for (const c of this.perHost) c.close()
  }
}

/**
 * The leader key on etcd: `<prefix>leader` = holder (the node name), held by heartbeats the
 * holder writes and timed by every other node on its own clock (Patroni/Stolon-like, with ms
 * granularity); an etcd lease bound to the key is only the backstop that deletes a dead
 * holder's key in the end.
 *
 *  - `renew` is one transaction `If(value == holder && lease == ours) Then put(holder, lease)`
 *    (the put changes the key's mod revision: the heartbeat) plus one keep-alive of the lease.
 *  - Another node (`acquire`) takes the key when it is absent (`create == 0`), when it names
 *    this node (a restarted kernel: no failover), or when it has seen no new revision of it
 *    for `ttlMs` on its monotonic clock, by `If(mod == the revision it timed)`.
 *  - `release` revokes the lease (etcd deletes the key with it).
 *
 * Safety (docs/multi-host.md, "Leadership and self-demotion"): `validUntil()` is the *send*
 * time of the last confirmed renewal (or grant) on this host's clock + `ttlMs` (and never past
 * send + the lease TTL, which is at least that). Any other node receives the revision that
 * renewal wrote later than it was sent, and waits `ttlMs` from its receipt before its take-over
 * may even be tried; a renewal it did not see makes the take-over fail. A primary that demotes
 * itself before `validUntil()` therefore stops writing before anyone can take the key. Neither
 * etcd's lease expiry sweep (every 500 ms) nor its lease extension when the etcd leader changes
 * (a lease's full TTL again) delays a failover any more.
 */
export class EtcdLeadership implements Leadership {
  /** The etcd lease id we hold (granted, and not known to be lost), or undefined. */
  private leaseId: string | undefined
  private ttlS = 3
  private until = 0
  private readonly key: string
  private readonly view: LeaderView
  private readonly listeners = new Set<() => void>()

  constructor(
    private readonly store: EtcdFlockStore,
    readonly holderId: string,
    private readonly clock: () => number,
    private readonly timeoutMs: number,
    private leaseMs: number,
    /** Monotonic ms, for timing other holders' heartbeats (never stepped by NTP). */
    private readonly mono: () => number = () => performance.now(),
  ) {
    this.key = store.key('leader')
    this.view = new LeaderView(leaseMs)
  }

  /** Until when (this host's clock) the key is certainly ours; 0 when we hold none. */
  validUntil(): number {
    return this.leaseId ? this.until : 0
  }

  /** One attempt per member: short enough that trying every member fits in the margin. */
  private attemptMs(): number {
    return Math.min(this.timeoutMs, Math.max(150, this.leaseMs / 8))
  }

  /**
   * A renewal asks the members at once (race; the write hedged), so it need not leave room for
   * trying them in turn: it may wait longer for a slow answer (a loaded machine, an etcd
   * election), which still counts from when it was sent. Only one renewal is in flight at a time.
   */
  private renewAttemptMs(): number {
    return Math.min(this.timeoutMs, Math.max(150, this.leaseMs / 4))
  }

  private observe(holder: string | undefined, rev: string | number | undefined): void {
    if (rev === undefined) return
    if (this.view.observe(holder, BigInt(rev), this.mono())) for (const l of this.listeners) l()
  }

  /**
   * Reads the key (linearizable) into the view, with the store's deadline like every other
   * read of an HA tick (a short one failed `node list`'s first call, which also connects, on a
   * loaded machine).
   */
  private async read(): Promise<void> {
    const res = await this.store.call((c, opts) => c.get(this.key).options(opts).exec())
    const kv = res.kvs[0]
    if (kv) this.observe(kv.value.toString('utf8'), kv.mod_revision)
    else this.observe(undefined, res.header.revision)
  }

  async acquire(ttlMs: number): Promise<boolean> {
    if (this.leaseId) return this.renew()
    this.leaseMs = ttlMs
    this.view.staleMs = ttlMs
    // etcd TTLs are whole seconds; rounding up keeps the backstop at or past ttlMs.
    this.ttlS = Math.max(1, Math.ceil(ttlMs / 1000))
    // Decided before anything is sent: a revision that turns stale only later is not ours to take.
    const stale = this.view.takeoverRev(this.mono())
    const sentAt = this.clock()
    const grant = await this.store.call((c, opts) => c.leaseClient.leaseGrant({ TTL: this.ttlS }, opts), this.attemptMs())
    const id = grant.ID
    const revoke = () => this.store.call((c, opts) => c.leaseClient.leaseRevoke({ ID: id }, opts), this.attemptMs()).catch(() => undefined)
    let rev: string | undefined
    try {
      rev = await this.store.call(async (c, opts) => {
        const put = () => c.put(this.key).value(this.holderId).lease(id)
        // Its holder stopped renewing: take it, unless it renewed since we timed it. First, as
        // a failover's path (each transaction is a round of etcd's consensus).
        if (stale !== undefined) {
          const swapped = await c.if(this.key, 'Mod', '==', stale.toString()).then(put()).options(opts).commit()
          if (swapped.succeeded) return swapped.header.revision
        }
        // Free (never held, released, or deleted with an expired lease).
        const created = await c.if(this.key, 'Create', '==', 0).then(put()).options(opts).commit()
        if (created.succeeded) return created.header.revision
        // Ours from a previous kernel on this node: take it over onto the new lease.
        const took = await c.if(this.key, 'Value', '==', this.holderId).then(put()).options(opts).commit()
        return took.succeeded ? took.header.revision : undefined
      }, this.attemptMs())
    } catch (err) {
      await revoke()
      throw err
    }
    if (rev === undefined) {
      await revoke()
      return false
    }
    this.leaseId = id
    this.until = sentAt + this.validMs()
    this.observe(this.holderId, rev)
    return true
  }

  private validMs(): number {
    return Math.min(this.leaseMs, this.ttlS * 1000)
  }

  /** False when the key is not ours any more or no member confirmed in time (see validUntil()). */
  async renew(): Promise<boolean> {
    const id = this.leaseId
    if (!id) return false
    const sentAt = this.clock()
    const heartbeat = this.store.race(
      (c, opts) =>
        c
          .if(this.key, 'Value', '==', this.holderId)
          .and(this.key, 'Lease', '==', id)
          .then(c.put(this.key).value(this.holderId).lease(id))
          .options(opts)
          .commit(),
      this.renewAttemptMs(),
      // A write every member would commit: the others only if the last one to answer is slow.
      Math.min(150, this.renewAttemptMs() / 3),
    )
    const keepAlive = this.store.race(async (c, opts) => {
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
    const [hb, ka] = await Promise.allSettled([heartbeat, keepAlive])
    const lost =
      (hb.status === 'fulfilled' && !hb.value.succeeded) ||
      (ka.status === 'fulfilled' && ka.value <= 0) ||
      (hb.status === 'rejected' && hb.reason instanceof EtcdLeaseInvalidError) ||
      (ka.status === 'rejected' && ka.reason instanceof EtcdLeaseInvalidError)
    if (lost) {
      // etcd answered: another node took the key, or the lease expired or was revoked. Certain.
      if (this.leaseId === id) this.drop()
      return false
    }
    // No member answered one of them in time: we just do not know. validUntil() still bounds us.
    if (hb.status !== 'fulfilled' || ka.status !== 'fulfilled') return false
    if (this.leaseId === id) this.until = sentAt + this.validMs()
    this.observe(this.holderId, hb.value.header.revision)
    return true
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

  /** The holder: undefined when there is no key, or its holder has not renewed it for ttlMs on this clock. */
  async current(): Promise<string | undefined> {
    await this.read()
    return this.view.holder(this.mono())
  }

  /**
   * Reports the holder whenever it changes, including the moment a holder turns stale on this
   * clock (a timer at the last change + ttlMs, not the next tick): the take-over starts then.
   */
  watch(cb: (holder: string | undefined) => void): () => void {
    let last: string | undefined | null = null
    let timer: NodeJS.Timeout | undefined
    const report = () => {
      if (timer) clearTimeout(timer)
      timer = undefined
      const now = this.mono()
      const h = this.view.holder(now)
      if (h !== last) {
        last = h
        cb(h)
      }
      const at = this.view.staleAt(now)
      if (at !== undefined) {
        timer = setTimeout(report, Math.ceil(at - now))
        timer.unref()
      }
    }
    this.listeners.add(report)
    const reread = () => void this.read().then(report, () => undefined)
    reread()
    const stop = this.store.watch('leader', (ev) => {
      if (ev) this.observe(ev.value, ev.rev)
      else reread()
    })
    return () => {
      this.listeners.delete(report)
      if (timer) clearTimeout(timer)
      stop()
    }
  }
}
