import { describe, expect, it } from 'vitest'
import { LeaderView } from '../../../src/cluster/leader-view.js'

describe('LeaderView (a holder timed on this node\'s clock)', () => {
  it('reports the holder until its key has gone unchanged for the lease, then offers exactly the timed revision for a take-over', () => {
    const v = new LeaderView(2500)
    v.observe('a', 10n, 1000)
    expect(v.holder(1000)).toBe('a')
    expect(v.staleAt(1000)).toBe(3500)
    expect(v.takeoverRev(3499)).toBeUndefined()
    expect(v.holder(3499)).toBe('a')
    // Stale at exactly lastChange + lease: nobody may take it a millisecond sooner.
    expect(v.holder(3500)).toBeUndefined()
    expect(v.takeoverRev(3500)).toBe(10n)
    expect(v.staleAt(3500)).toBeUndefined()
  })

  it('times a revision from its first receipt: seeing it again (a read after the watch event) never restarts the clock', () => {
    const v = new LeaderView(2500)
    expect(v.observe('a', 10n, 1000)).toBe(true)
    expect(v.observe('a', 10n, 2000)).toBe(false)
    expect(v.takeoverRev(3500)).toBe(10n)
  })

  it('a renewal (a newer revision) restarts the clock; an older one arriving late (a lagging watch) is ignored', () => {
    const v = new LeaderView(2500)
    v.observe('a', 10n, 1000)
    expect(v.observe('a', 11n, 1250)).toBe(true)
    expect(v.takeoverRev(3500)).toBeUndefined()
    expect(v.holder(3500)).toBe('a')
    expect(v.observe('a', 10n, 3600)).toBe(false)
    // The take-over compares on the newest revision seen, so a renewal it missed fails it.
    expect(v.takeoverRev(3750)).toBe(11n)
  })

  it('an absent key has no holder and nothing to take over (that is a plain create-if-absent)', () => {
    const v = new LeaderView(2500)
    expect(v.holder(0)).toBeUndefined()
    expect(v.takeoverRev(10_000)).toBeUndefined()
    v.observe('a', 10n, 1000)
    expect(v.observe(undefined, 12n, 1100)).toBe(true)
    expect(v.holder(1100)).toBeUndefined()
    expect(v.staleAt(1100)).toBeUndefined()
    expect(v.takeoverRev(99_000)).toBeUndefined()
  })

  it('a new holder is fresh from the moment it is seen', () => {
    const v = new LeaderView(2500)
    v.observe('a', 10n, 1000)
    v.observe('b', 20n, 4000)
    expect(v.holder(6499)).toBe('b')
    expect(v.takeoverRev(6500)).toBe(20n)
  })
})
