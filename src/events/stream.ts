import type { Principal } from '../kernel/grants.js'
import { matchesEventPattern, mayReadEvent } from '../kernel/grants.js'
import type { RawStream } from '../kernel/services.js'
import { EVENT_CURSOR_AHEAD, EVENTS_NOT_GRANTED } from './errors.js'
import type { EventJournal, JournalEntry } from '../kernel/event-journal.js'

/**
 * Serves one GET /v1/events reader: the journal from its cursor, then (follow) live events,
 * in seq order with no gap and no duplicate.
 *
 * Ordering: the reader subscribes to live entries FIRST, remembers the journal's lastSeq at
 * that instant, replays the journal up to it from disk, then sends queued live entries
 * (all > that seq). Backpressure: the reader never has more than one socket buffer in
 * flight (we wait for 'drain'); live entries queue meanwhile, and when the queue holds more
 * than `maxQueuedBytes` the reader is cut with a final `stream.closed` line naming the seq
 * to resume after — kernel memory per reader stays bounded, and the bus never waits.
 */
export interface StreamOptions {
  journal: EventJournal
  principal: Principal
  stream: RawStream
  signal: AbortSignal
  after?: number | undefined
  types?: string | undefined
  follow: boolean
  maxQueuedBytes: number
  /** Called once when a slow reader is cut (for the log). */
  onDropped?: (info: { queuedBytes: number; resumeAfter: number }) => void
}

export type StreamEnd = 'done' | 'aborted' | 'slow-reader' | 'stopping'

/** Visible to this principal: its grants (extensions), and hook invocations of its own hooks only. */
export function visibleTo(principal: Principal, e: { type: string; data: unknown }): boolean {
  if (e.type === 'hook.invoke' && principal.role === 'extension') {
    return (e.data as { extension?: unknown } | null)?.extension === principal.extension
  }
  return mayReadEvent(principal, e.type)
}

export async function serveEvents(o: StreamOptions): Promise<StreamEnd> {
  const { journal, principal, stream, signal } = o
  if (principal.role === 'extension' && !principal.grants.some((g) => g.startsWith('events:subscribe:') || g.startsWith('hooks:'))) {
    throw EVENTS_NOT_GRANTED({ extension: principal.extension ?? '?' })
  }
  const patterns = o.types?.split(',').map((p) => p.trim()) ?? ['*']
  const wanted = (e: JournalEntry) => visibleTo(principal, e) && (patterns.some((p) => matchesEventPattern(p, e.type)) || (e.type === 'hook.invoke' && principal.role === 'extension'))

  if (o.after !== undefined && o.after > journal.lastSeq) throw EVENT_CURSOR_AHEAD({ after: o.after, lastSeq: journal.lastSeq })

  // Refusals above answer with their HTTP status; from here on the stream is open (a
  // follower learns it is connected before the first event).
  stream.open()

  // Live entries queue here while the reader catches up or is slow.
  const queue: JournalEntry[] = []
  let queuedBytes = 0
  let dropped = false
  let wake: (() => void) | undefined
  const unsubscribe = o.follow
    ? journal.subscribe((e) => {
        if (dropped || !wanted(e)) return
        queue.push(e)
        queuedBytes += 200 + estimate(e.data)
        if (queuedBytes > o.maxQueuedBytes) dropped = true
        wake?.()
      })
    : () => {}
  const onAbort = () => wake?.()
  signal.addEventListener('abort', onAbort)
  let lastSent = o.after ?? (o.follow ? journal.lastSeq : 0)
  const upTo = journal.lastSeq
  try {
    if (o.after !== undefined && o.after + 1 < journal.oldestSeq) {
      stream.write({ type: 'stream.missed', data: { after: o.after, oldestSeq: journal.oldestSeq } })
    }
    // Replay from disk.
    if (o.after !== undefined || !o.follow) {
      for (const batch of journal.read(lastSent, upTo)) {
        for (const e of batch) {
          if (signal.aborted) return 'aborted'
          if (dropped) return close('slow-reader')
          if (!wanted(e)) continue
          lastSent = e.seq
          if (!stream.write(e)) await waitDrain()
        }
      }
    }
    lastSent = Math.max(lastSent, upTo)
    if (!o.follow) return 'done'
    for (;;) {
      if (signal.aborted) return close('stopping')
      if (dropped) return close('slow-reader')
      const e = queue.shift()
      if (e === undefined) {
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
        continue
      }
      queuedBytes -= 200 + estimate(e.data)
      if (e.seq <= lastSent) continue
      lastSent = e.seq
      if (!stream.write(e)) await waitDrain()
    }
  } finally {
    unsubscribe()
    signal.removeEventListener('abort', onAbort)
  }

  /** Waits for the socket to drain, or for the queue to overflow or the reader to go meanwhile. */
  async function waitDrain(): Promise<void> {
    await Promise.race([
      stream.drain(),
      new Promise<void>((resolve) => {
        wake = () => {
          if (dropped || signal.aborted) resolve()
        }
      }),
    ])
    wake = undefined
  }

  function close(why: 'slow-reader' | 'stopping'): StreamEnd {
    const reason = why === 'slow-reader' ? `slow reader: more than ${o.maxQueuedBytes} bytes of events queued` : 'kernel stopping or connection closed'
    if (why === 'slow-reader') o.onDropped?.({ queuedBytes, resumeAfter: lastSent })
    queue.length = 0
    stream.write({ type: 'stream.closed', data: { reason, resumeAfter: lastSent } })
    // A reader that does not read even this last line is cut after a grace period.
    if (why === 'slow-reader') setTimeout(() => stream.destroy(), 5_000).unref()
    return why
  }
}

/** Cheap size estimate of a payload (events are small, flat objects). */
function estimate(data: unknown): number {
  if (data === null || typeof data !== 'object') return 16
  let n = 2
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) n += k.length + (typeof v === 'string' ? v.length : 16) + 4
  return n
}
