/**
 * What one node knows of the leader key, timed on its own monotonic clock: the heartbeat half
 * of leadership on etcd (docs/multi-host.md, "Leadership and self-demotion"). Pure, so the
 * rules are table-tested; EtcdLeadership feeds it every watch event, read and own write.
 *
 * The holder renews by *writing* the key (its mod revision changes every renewal). A node that
 * has seen no new revision for `staleMs` on its clock treats the holder as gone and may take
 * the key, but only by a compare-and-swap on exactly the revision it timed: a renewal it
 * missed makes the swap fail. The holder demotes itself at send time of its last confirmed
 * renewal + `staleMs` − margin, and that send precedes any node's receipt of the revision it
 * wrote, so the holder has stopped writing before any node's `staleMs` can run out.
 */
/** The default lease duration (ms): the flock's `ttlMs` unless configured (docs/multi-host.md, "Timing"). */
export const DEFAULT_LEASE_MS = 2500

export interface LeaderSeen {
  /** The holder as written in the key; undefined: no key. */
  holder: string | undefined
  /** The key's mod revision (for an absent key: the store revision the read or delete had). */
  rev: bigint
  /** When this node first saw this revision (monotonic ms). */
  at: number
}

export class LeaderView {
  private seen: LeaderSeen | undefined

  constructor(public staleMs: number) {}

  /**
   * Records an observation. Only a newer revision counts: seeing the same revision again (a
   * read repeating what a watch event told) never restarts its clock, and an older one (a
   * watch lagging behind a read) is old news.
   * @returns true when this changed what the view holds.
   */
  observe(holder: string | undefined, rev: bigint, now: number): boolean {
    const s = this.seen
    if (s && rev <= s.rev) return false
    this.seen = { holder, rev, at: now }
    return true
  }

  /** The last observation, if any. */
  last(): LeaderSeen | undefined {
    return this.seen
  }

  /** The holder, or undefined when there is no key or it has not changed for `staleMs`. */
  holder(now: number): string | undefined {
    const s = this.seen
    if (!s || s.holder === undefined) return undefined
    return now - s.at >= this.staleMs ? undefined : s.holder
  }

  /** When the current holder turns stale (undefined: no holder, or already stale at `now`). */
  staleAt(now: number): number | undefined {
    const s = this.seen
    if (!s || s.holder === undefined) return undefined
    const at = s.at + this.staleMs
    return at > now ? at : undefined
  }

  /**
   * The revision a take-over may compare against: the held key's, once it has been unchanged
   * for `staleMs` on this clock. Undefined while the holder is fresh (or there is no key: that
   * is a plain create-if-absent).
   */
  takeoverRev(now: number): bigint | undefined {
    const s = this.seen
    if (!s || s.holder === undefined || now - s.at < this.staleMs) return undefined
    return s.rev
  }
}
