import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { EventJournal, type JournalEntry } from '../../../src/kernel/event-journal.js'
import { tempDir } from '../../helpers/tmp.js'

const ev = (i: number) => ({ type: 'config.reloaded', at: new Date().toISOString(), payload: { applied: [`k${i}`], restartRequired: [] } })

function all(j: EventJournal, after = 0): JournalEntry[] {
  return [...j.read(after)].flat()
}

const dirs: Array<{ cleanup(): void }> = []
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup()
})
function dir(): string {
  const t = tempDir('mf-journal-')
  dirs.push(t)
  return path.join(t.dir, 'events')
}

describe('event journal', () => {
  it('numbers events from 1, keeps them on disk, and continues the seq after a reopen', () => {
    const d = dir()
    const j = new EventJournal({ dir: d })
    const seen: number[] = []
    j.subscribe((e) => seen.push(e.seq))
    for (let i = 0; i < 5; i++) j.append(ev(i))
    expect(seen).toEqual([1, 2, 3, 4, 5])
    j.close()
    const j2 = new EventJournal({ dir: d })
    expect(j2.lastSeq).toBe(5)
    expect(j2.append(ev(5)).seq).toBe(6)
    expect(all(j2).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6])
    expect(all(j2, 4).map((e) => (e.data as { applied: string[] }).applied[0])).toEqual(['k4', 'k5'])
    expect(statSync(d).mode & 0o777).toBe(0o700)
    j2.close()
  })

  it('is bounded: rolls segments by size and count and drops the oldest', () => {
    const d = dir()
    const j = new EventJournal({ dir: d, segmentBytes: 1024, segmentEvents: 1000, segments: 3 })
    for (let i = 0; i < 200; i++) j.append(ev(i))
    const files = readdirSync(d)
    expect(files.length).toBe(3)
    const bytes = files.reduce((n, f) => n + statSync(path.join(d, f)).size, 0)
    expect(bytes).toBeLessThan(3 * (1024 + 200))
    expect(j.lastSeq).toBe(200)
    expect(j.oldestSeq).toBeGreaterThan(1)
    const kept = all(j)
    expect(kept[0]!.seq).toBe(j.oldestSeq)
    expect(kept.map((e) => e.seq)).toEqual(Array.from({ length: 200 - j.oldestSeq + 1 }, (_, i) => j.oldestSeq + i))
    j.close()
    const byCount = new EventJournal({ dir: dir(), segmentEvents: 10, segments: 2 })
    for (let i = 0; i < 35; i++) byCount.append(ev(i))
    expect(byCount.oldestSeq).toBe(21)
    byCount.close()
  })

  it('truncates a corrupt tail with a warning and never throws', () => {
    const d = dir()
    const j = new EventJournal({ dir: d })
    for (let i = 0; i < 3; i++) j.append(ev(i))
    j.close()
    const seg = path.join(d, readdirSync(d)[0]!)
    appendFileSync(seg, '{"seq":4,"id":"x","type":"config.rel') // a torn write
    const lines: string[] = []
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) })
    const j2 = new EventJournal({ dir: d, log })
    expect(lines.some((l) => l.includes('corrupt tail truncated'))).toBe(true)
    expect(j2.lastSeq).toBe(3)
    expect(j2.append(ev(3)).seq).toBe(4)
    expect(readFileSync(seg, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([1, 2, 3, 4])
    j2.close()
    // Garbage in the middle of the last segment: everything from it on is cut.
    appendFileSync(seg, 'not json\n{"seq":99,"id":"y","type":"t","time":"t","data":{}}\n')
    const j3 = new EventJournal({ dir: d, log })
    expect(j3.lastSeq).toBe(4)
    j3.close()
  })
})
