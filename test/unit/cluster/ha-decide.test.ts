import { describe, expect, it } from 'vitest'
import { decideNode, type NodeObserved } from '../../../src/cluster/ha-decide.js'

const base: NodeObserved = {
  now: 10_000,
  node: 'a',
  local: 'primary',
  storeOk: true,
  leader: 'a',
  holding: true,
  validUntil: 13_000,
  marginMs: 1000,
  failoverEnabled: true,
  candidate: false,
  lastLeader: 'a',
  leaderReachable: false,
}
const decide = (o: Partial<NodeObserved>) => decideNode({ ...base, ...o })

describe('decideNode', () => {
  it('keeps a primary that holds a renewed lease', () => {
    expect(decide({})).toMatchObject({ action: 'keep', sentence: 'holding the leader lease: primary on a keeps serving' })
  })

  it('keeps a primary serving while the lease is still certainly its own, even with etcd unreachable', () => {
    const d = decide({ storeOk: false, leader: undefined, now: 11_500 })
    expect(d.action).toBe('keep')
    expect(d.sentence).toContain('at most 500 ms more')
  })

  it('demotes a primary once the safety margin before the lease can expire is reached', () => {
    expect(decide({ storeOk: false, leader: undefined, now: 12_000 }).action).toBe('demote')
    expect(decide({ storeOk: false, leader: undefined, now: 12_500 }).sentence).toContain('1000 ms safety margin')
  })

  it('demotes a primary whose lease was lost or whose key names another node', () => {
    expect(decide({ holding: false, leader: 'b' }).action).toBe('demote')
    expect(decide({ leader: 'b' }).action).toBe('demote')
    expect(decide({ leader: undefined }).action).toBe('demote')
    expect(decide({ holding: false, storeOk: false, leader: undefined }).action).toBe('demote')
  })

  it('lets a primary without a held lease take a free key or its own (a restarted kernel)', () => {
    expect(decide({ holding: false, leader: undefined, validUntil: 0 }).action).toBe('acquire')
    expect(decide({ holding: false, leader: 'a', validUntil: 0 }).action).toBe('acquire')
  })

  it('does nothing on a replica or a fenced node while etcd is unreachable', () => {
    for (const local of ['replica', 'fenced', 'down'] as const) {
      const d = decide({ local, storeOk: false, leader: undefined, holding: false, validUntil: 0, candidate: true })
      expect(d.action, local).toBe('wait')
      expect(d.sentence).toContain('flock store unreachable')
    }
  })

  it('promotes a replica only when the key is free and it is the candidate, with failover on', () => {
    const r = { local: 'replica' as const, holding: false, validUntil: 0, leader: undefined }
    expect(decide({ ...r, candidate: true }).action).toBe('promote')
    expect(decide({ ...r, candidate: false }).action).toBe('wait')
    expect(decide({ ...r, candidate: true, failoverEnabled: false }).action).toBe('wait')
    expect(decide({ ...r, candidate: true, leader: 'b' }).action).toBe('follow')
  })

  it('rejoins a fenced old primary to a new leader, and resumes one that demoted itself and was not replaced', () => {
    const f = { local: 'fenced' as const, holding: false, validUntil: 0 }
    expect(decide({ ...f, leader: 'b', leaderReachable: true }).action).toBe('rejoin')
    expect(decide({ ...f, leader: 'b', leaderReachable: false }).action).toBe('wait')
    expect(decide({ ...f, leader: undefined, lastLeader: 'a' }).action).toBe('resume')
    expect(decide({ ...f, leader: undefined, lastLeader: 'b' }).action).toBe('wait')
  })

  it('restarts a local instance that is down with no postmaster (nothing else starts it on a node), and waits while a postmaster is still there', () => {
    const down = { local: 'down' as const, holding: true, leader: 'a' }
    expect(decide({ ...down, postmasterGone: true }).action).toBe('restart')
    expect(decide({ ...down, leader: 'b', holding: false, validUntil: 0, postmasterGone: true }).action).toBe('restart')
    expect(decide({ ...down, postmasterGone: false }).action).toBe('wait')
    // Nothing without the store's say.
    expect(decide({ ...down, storeOk: false, leader: undefined, postmasterGone: true }).action).toBe('wait')
  })
})
