import { describe, expect, it } from 'vitest'
import type { BackupManifest } from '../../../src/backup/manifest.js'
import { planPrune } from '../../../src/backup/retention.js'

function b(id: string, stopTime: string, lsn: string, type: 'physical' | 'logical' = 'physical', db = 'app'): BackupManifest {
  return {
    formatVersion: 1, id, type, label: id, format: type === 'physical' ? 'tar' : 'directory',
    startLsn: lsn, stopLsn: lsn, startTime: stopTime, stopTime, timeline: 1, pgVersion: '15', databases: [db],
    compression: 'lz4', encryption: null, tool: 't', sourceBytes: 0, totalBytes: 0, files: [],
  }
}

describe('planPrune', () => {
  // names deliberately sort in the opposite order of time: ordering must come from LSN/time.
  const list = [
    b('z-oldest', '2026-11-20T03:00:00Z', '0/1000000'),
    b('y', '2026-11-21T03:00:00Z', '0/3000000'),
    b('x', '2026-11-21T15:00:00Z', '0/5000000'),
    b('a-newest', '2026-11-22T03:00:00Z', '0/7000000'),
  ]

  it('keeps the last N by stop LSN, never by name', () => {
    const p = planPrune(list, { keepLast: 2 })
    expect(p.keep.map((k) => k.id)).toEqual(['x', 'a-newest'])
    expect(p.remove.map((r) => r.id)).toEqual(['z-oldest', 'y'])
    expect(p.walKeepFrom).toBe('000000010000000000000005')
  })

  it('keeps the newest backup of each of the last D days', () => {
    const p = planPrune(list, { keepDaily: 2 })
    expect(p.keep.map((k) => k.id)).toEqual(['x', 'a-newest'])
    expect(planPrune(list, { keepDaily: 3 }).keep.map((k) => k.id)).toEqual(['z-oldest', 'x', 'a-newest'])
  })

  it('always keeps the newest backup of each series, and series do not push each other out', () => {
    const withLogical = [...list, b('l1', '2026-11-22T04:00:00Z', '0/8000000', 'logical'), b('l2', '2026-11-22T05:00:00Z', '0/9000000', 'logical')]
    const p = planPrune(withLogical, { keepLast: 0 })
    expect(p.keep.map((k) => k.id).sort()).toEqual(['a-newest', 'l2'])
    expect(p.walKeepFrom).toBe('000000010000000000000007')
  })

  it('keeps all WAL when no physical backup is kept and refuses an empty policy', () => {
    expect(planPrune([b('l', '2026-11-22T04:00:00Z', '0/8000000', 'logical')], { keepLast: 1 }).walKeepFrom).toBeUndefined()
    expect(() => planPrune(list, {})).toThrow(expect.objectContaining({ code: 'E_BACKUP_INVALID_ARGUMENT' }))
    expect(() => planPrune(list, { keepLast: -1 })).toThrow(expect.objectContaining({ code: 'E_BACKUP_INVALID_ARGUMENT' }))
  })
})
