import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FileLeadership, MemoryLeadership } from '../../../src/replication/leadership.js'
import { tempDir } from '../../helpers/tmp.js'

describe('FileLeadership', () => {
  const dirs: Array<{ cleanup(): void }> = []
  afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()))

  it('grants the lease to one holder at a time and hands it over on release', async () => {
    const t = tempDir(); dirs.push(t)
    const file = path.join(t.dir, 'leader.json')
    const a = new FileLeadership(file, 'a')
    const b = new FileLeadership(file, 'b')
    expect(await a.acquire(10_000)).toBe(true)
    expect(await a.acquire(10_000)).toBe(true)
    expect(await b.acquire(10_000)).toBe(false)
    expect(await b.renew()).toBe(false)
    expect(await a.renew()).toBe(true)
    expect(await b.current()).toBe('a')
    await a.release()
    expect(await b.acquire(10_000)).toBe(true)
    expect(await a.renew()).toBe(false)
  })

  it('lets the lease expire after its TTL (moving clock, no sleeping)', async () => {
    const t = tempDir(); dirs.push(t)
    const file = path.join(t.dir, 'leader.json')
    let now = 1_000
    const a = new FileLeadership(file, 'a', () => now)
    const b = new FileLeadership(file, 'b', () => now)
    expect(await a.acquire(500)).toBe(true)
    now += 499
    expect(await b.acquire(500)).toBe(false)
    now += 2
    expect(await b.acquire(500)).toBe(true)
    expect(await a.renew()).toBe(false)
  })

  it('frees the lease at once when its holder process is gone', async () => {
    const t = tempDir(); dirs.push(t)
    const file = path.join(t.dir, 'leader.json')
    const dead = new FileLeadership(file, 'dead', Date.now, 2 ** 22 + 12345) // no such pid
    expect(await dead.acquire(60_000)).toBe(true)
    const b = new FileLeadership(file, 'b')
    expect(await b.acquire(60_000)).toBe(true)
  })

  it('serialises concurrent acquires: exactly one wins', async () => {
    const t = tempDir(); dirs.push(t)
    const file = path.join(t.dir, 'leader.json')
    const res = await Promise.all(['a', 'b', 'c', 'd'].map((id) => new FileLeadership(file, id).acquire(10_000)))
    expect(res.filter(Boolean)).toHaveLength(1)
  })

  it('tells watchers who holds the lease', async () => {
    const t = tempDir(); dirs.push(t)
    const file = path.join(t.dir, 'leader.json')
    const a = new FileLeadership(file, 'a')
    await a.acquire(10_000)
    const seen = await new Promise<string | undefined>((resolve) => {
      const stop = a.watch((h) => { stop(); resolve(h) })
    })
    expect(seen).toBe('a')
  })
})

describe('MemoryLeadership', () => {
  it('behaves like the file lease', async () => {
    let now = 0
    const a = new MemoryLeadership('k', 'a', () => now)
    const b = new MemoryLeadership('k', 'b', () => now)
    const seen: Array<string | undefined> = []
    b.watch((h) => seen.push(h))
    expect(await a.acquire(100)).toBe(true)
    expect(await b.acquire(100)).toBe(false)
    now = 101
    expect(await a.renew()).toBe(false)
    expect(await b.acquire(100)).toBe(true)
    await b.release()
    expect(seen).toEqual([undefined, 'a', 'b', undefined])
  })
})
