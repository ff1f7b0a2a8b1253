import { describe, expect, it } from 'vitest'
import { cronMatches, nextRun, parseCron } from '../../../src/backup/cron.js'
import { firstMissingSegment, parseSegmentName, segmentName, segmentNo, type ArchivedSegment } from '../../../src/backup/wal.js'

const seg = (tli: number, n: bigint, partial = false): ArchivedSegment => ({ name: segmentName(tli, n) + (partial ? '.partial' : ''), tli, segNo: n, partial })

describe('WAL segment arithmetic', () => {
  it('names segments like Postgres does', () => {
    expect(segmentName(1, segmentNo('0/3000060'))).toBe('000000010000000000000003')
    expect(segmentName(2, segmentNo('1/FF000000'))).toBe('0000000200000001000000FF')
    expect(parseSegmentName('0000000100000001000000FF.partial')).toEqual({ tli: 1, segNo: 511n, partial: true })
    expect(parseSegmentName('00000002.history')).toBeUndefined()
  })

  it('finds the first gap after the backup stop segment', () => {
    const archive = [seg(1, 3n), seg(1, 4n), seg(1, 6n), seg(1, 7n, true)]
    expect(firstMissingSegment(archive, 1, '0/3000100')).toBe('000000010000000000000005')
    expect(firstMissingSegment(archive, 1, '0/3000100', '0/4FFFFFF')).toBeUndefined()
    expect(firstMissingSegment(archive, 1, '0/3000100', '0/9000000')).toBe('000000010000000000000005')
    expect(firstMissingSegment([seg(1, 4n), seg(1, 5n)], 1, '0/3000100', '0/8000000')).toBe('000000010000000000000006')
  })
})

describe('backup.schedule cron', () => {
  it('parses lists, ranges and steps and rejects nonsense with E_BACKUP_CRON_INVALID', () => {
    const s = parseCron('*/15 3,4 * * 1-5')
    expect([...s.minutes]).toEqual([0, 15, 30, 45])
    expect([...s.hours]).toEqual([3, 4])
    expect(() => parseCron('0 3 * *')).toThrow(expect.objectContaining({ code: 'E_BACKUP_CRON_INVALID' }))
    expect(() => parseCron('61 * * * *')).toThrow(expect.objectContaining({ code: 'E_BACKUP_CRON_INVALID' }))
    expect(() => parseCron('a * * * *')).toThrow(expect.objectContaining({ code: 'E_BACKUP_CRON_INVALID' }))
  })

  it('computes the next run in UTC', () => {
    expect(nextRun(parseCron('0 3 * * *'), new Date('2026-11-25T10:00:00Z'))?.toISOString()).toBe('2026-11-26T03:00:00.000Z')
    expect(nextRun(parseCron('0 3 * * *'), new Date('2026-11-25T02:59:30Z'))?.toISOString()).toBe('2026-11-25T03:00:00.000Z')
    expect(nextRun(parseCron('*/5 * * * *'), new Date('2026-11-25T10:03:00Z'))?.toISOString()).toBe('2026-11-25T10:05:00.000Z')
    // Sunday (0 and 7), 2026-11-29 is a Sunday
    expect(nextRun(parseCron('30 1 * * 7'), new Date('2026-11-25T00:00:00Z'))?.toISOString()).toBe('2026-11-29T01:30:00.000Z')
    expect(nextRun(parseCron('0 0 1 1 *'), new Date('2026-11-25T00:00:00Z'))?.toISOString()).toBe('2027-01-01T00:00:00.000Z')
    expect(nextRun(parseCron('0 0 31 2 *'), new Date('2026-11-25T00:00:00Z'))).toBeUndefined()
    // dom OR dow when both are restricted
    expect(cronMatches(parseCron('0 0 1 * 1'), new Date('2026-11-30T00:00:00Z'))).toBe(true)
  })
})
