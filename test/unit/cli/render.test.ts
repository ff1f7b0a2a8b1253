import { describe, expect, it } from 'vitest'
import { replicationText } from '../../../src/cli/render.js'
import type { StatusOutput } from '../../../src/api/core.js'

type Inst = StatusOutput['instances'][number]
const base: Inst = { name: 'r1', role: 'replica', state: 'running', pid: 1, port: 5434, host: '127.0.0.1', dataDir: '/d', user: 'postgres', database: 'postgres', url: 'postgres://x', adopted: false, restarts: 0 }

describe('replicationText', () => {
  it('shows state, sync state and lag for a streaming replica', () => {
    expect(replicationText({ ...base, replication: { state: 'streaming', syncState: 'sync', lagBytes: 3 * 1024 * 1024, lagSeconds: 0.25, observedAt: 'x' } })).toBe(
      '  streaming sync, lag 3.0 MiB / 0.3 s',
    )
  })
  it('says when a replica is not streaming, and says nothing for a primary', () => {
    expect(replicationText({ ...base, replication: null })).toBe('  (not streaming)')
    expect(replicationText({ ...base, role: 'primary' })).toBe('')
    expect(replicationText(base)).toBe('') // not reported by an older kernel
  })
})
