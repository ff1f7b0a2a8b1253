import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { EventJournal } from '../../../src/kernel/event-journal.js'
import { serveEvents } from '../../../src/events/stream.js'
import type { RawStream } from '../../../src/kernel/services.js'
import { tempDir } from '../../helpers/tmp.js'

/** A sink that records lines like a reader that always keeps up. */
function sink(): RawStream & { lines: Array<{ seq?: number; type: string; data?: unknown }> } {
  const lines: Array<{ seq?: number; type: string; data?: unknown }> = []
  return { lines, open: () => {}, write: (l) => (lines.push(l as never), true), drain: async () => {}, bufferedBytes: () => 0, destroy: () => {} }
}

const admin = { role: 'admin' as const, tokenId: 't', grants: [] }
const ev = (i: number) => ({ type: 'config.reloaded', at: new Date().toISOString(), payload: { applied: [`k${i}`], restartRequired: [] } })

const dirs: Array<{ cleanup(): void }> = []
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup()
})
function journal(opts: { segmentEvents?: number; segments?: number } = {}): EventJournal {
  const t = tempDir('mf-stream-')
  dirs.push(t)
  return new EventJournal({ dir: path.join(t.dir, 'events'), ...opts })
}

describe('serveEvents', () => {
  it('says first when the cursor is older than the journal keeps, then sends what is kept', async () => {
    const j = journal({ segmentEvents: 10, segments: 2 })
    for (let i = 0; i < 50; i++) j.append(ev(i))
    expect(j.oldestSeq).toBe(31)
    const s = sink()
    const end = await serveEvents({ journal: j, principal: admin, stream: s, signal: new AbortController().signal, after: 5, follow: false, maxQueuedBytes: 1 << 20 })
    expect(end).toBe('done')
    expect(s.lines[0]).toEqual({ type: 'stream.missed', data: { after: 5, oldestSeq: 31 } })
    expect(s.lines.slice(1).map((l) => l.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 31 + i))
    // A cursor inside the journal: no missed line.
    const t = sink()
    await serveEvents({ journal: j, principal: admin, stream: t, signal: new AbortController().signal, after: 45, follow: false, maxQueuedBytes: 1 << 20 })
    expect(t.lines.map((l) => l.seq)).toEqual([46, 47, 48, 49, 50])
    j.close()
  })

  it('follow: events appended while the reader replays come after the replay, once each, in order', async () => {
    const j = journal()
    for (let i = 0; i < 100; i++) j.append(ev(i))
    const s = sink()
    const stop = new AbortController()
    // Append more while the follower is being set up and replaying.
    const serving = serveEvents({ journal: j, principal: admin, stream: s, signal: stop.signal, after: 0, follow: true, maxQueuedBytes: 1 << 20 })
    for (let i = 100; i < 150; i++) j.append(ev(i))
    await new Promise((r) => setTimeout(r, 50))
    for (let i = 150; i < 160; i++) j.append(ev(i))
    await new Promise((r) => setTimeout(r, 50))
    stop.abort()
    expect(await serving).toBe('stopping')
    const seqs = s.lines.filter((l) => l.seq !== undefined).map((l) => l.seq)
    expect(seqs).toEqual(Array.from({ length: 160 }, (_, i) => i + 1))
    expect(s.lines.at(-1)).toMatchObject({ type: 'stream.closed', data: { resumeAfter: 160 } })
    j.close()
  })
})
