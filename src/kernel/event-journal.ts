import { randomUUID } from 'node:crypto'
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { redactor } from '../secrets/redact.js'
import type { KernelEvent } from './events.js'

/**
 * The event journal: every event the kernel bus accepts, numbered and kept on disk so a
 * reader of GET /v1/events can resume from a cursor, across kernel restarts.
 *
 * Layout: <state>/events/seg-<first seq, 16 digits>.ndjson, one JSON line per event
 * `{"seq":n,"id":"…","type":"…","time":"…","data":{…}}`. Appends are synchronous writes on an
 * open descriptor (a few µs; the bus delivers synchronously and a reader must never see seq
 * n+1 before n is on disk), so a kernel killed at any point loses no accepted event and at
 * worst leaves half a line. Bounded: a segment is closed after `segmentBytes` or
 * `segmentEvents`, and only the newest `segments` are kept (the oldest is deleted).
 *
 * Opening: the newest segment is read, and a tail that does not parse (a torn write after a
 * crash, garbage) is cut off at the last good line, with a warning, never an error. Seq
 * continues after the last good line. Values the vault knows pass through the redactor
 * before they are written (events carry names, never secret values; this is the backstop).
 */
export interface JournalEntry {
  seq: number
  id: string
  type: string
  time: string
  data: unknown
}

export interface JournalOptions {
  dir: string
  log?: Logger | undefined
  segmentBytes?: number
  segmentEvents?: number
  segments?: number
}

export const JOURNAL_DEFAULTS = { segmentBytes: 4 * 1024 * 1024, segmentEvents: 50_000, segments: 8 }

const SEG_RE = /^seg-(\d{16})\.ndjson$/

function segName(first: number): string {
  return `seg-${String(first).padStart(16, '0')}.ndjson`
}

function parseEntry(line: string): JournalEntry | undefined {
  if (line.length === 0) return undefined
  try {
    const v = JSON.parse(line) as Partial<JournalEntry>
    if (typeof v.seq !== 'number' || !Number.isInteger(v.seq) || typeof v.type !== 'string' || typeof v.id !== 'string' || typeof v.time !== 'string') return undefined
    return v as JournalEntry
  } catch {
    return undefined
  }
}

export class EventJournal {
  readonly dir: string
  private readonly log: Logger | undefined
  private readonly segmentBytes: number
  private readonly segmentEvents: number
  private readonly maxSegments: number
  /** First seq of each segment on disk, oldest first. */
  private firsts: number[] = []
  private fd: number | undefined
  private curBytes = 0
  private curEvents = 0
  private nextSeq = 1
  private closed = false
  private readonly listeners = new Set<(e: JournalEntry) => void>()

  constructor(opts: JournalOptions) {
    this.dir = opts.dir
    this.log = opts.log
    this.segmentBytes = Math.max(256, opts.segmentBytes ?? JOURNAL_DEFAULTS.segmentBytes)
    this.segmentEvents = Math.max(1, opts.segmentEvents ?? JOURNAL_DEFAULTS.segmentEvents)
    this.maxSegments = Math.max(2, opts.segments ?? JOURNAL_DEFAULTS.segments)
    this.open()
  }

  /** Seq of the newest event (0 when none was ever written). */
  get lastSeq(): number {
    return this.nextSeq - 1
  }

  /** Seq of the oldest event still kept (lastSeq + 1 when the journal is empty). */
  get oldestSeq(): number {
    return this.firsts[0] ?? this.nextSeq
  }

  /** Numbers, writes and announces one event; returns its entry. */
  append(ev: KernelEvent): JournalEntry {
    const entry: JournalEntry = { seq: this.nextSeq, id: randomUUID(), type: ev.type, time: ev.at, data: ev.payload ?? {} }
    const line = redactor.scrub(JSON.stringify(entry)) + '\n'
    // After close (kernel stopping): nothing is written or announced any more.
    if (this.closed) return entry
    if (this.fd === undefined || this.curBytes >= this.segmentBytes || this.curEvents >= this.segmentEvents) this.roll(entry.seq)
    try {
      writeSync(this.fd!, line)
      this.curBytes += Buffer.byteLength(line)
      this.curEvents++
    } catch (err) {
      // A full disk must not take the kernel down with it: the event still reaches live
      // readers, and a resuming reader is told it missed what was not written.
      this.log?.error({ err, seq: entry.seq, eventType: entry.type }, 'event journal write failed')
    }
    this.nextSeq++
    const out = line.length === JSON.stringify(entry).length + 1 ? entry : (JSON.parse(line) as JournalEntry)
    for (const fn of [...this.listeners]) {
      try {
        fn(out)
      } catch (err) {
        this.log?.error({ err }, 'event journal listener threw; continuing with the others')
      }
    }
    return out
  }

  /** Live entries, in seq order, as they are appended. Returns the unsubscribe function. */
  subscribe(fn: (e: JournalEntry) => void): () => void {
    const sub = (e: JournalEntry) => fn(e)
    this.listeners.add(sub)
    return () => void this.listeners.delete(sub)
  }

  get subscribers(): number {
    return this.listeners.size
  }

  /**
   * Entries with after < seq <= upTo from disk, oldest first, in batches of whole segments
   * (so memory stays bounded by one segment). Unparsable lines are skipped.
   */
  *read(after: number, upTo = this.lastSeq): Generator<JournalEntry[]> {
    const firsts = [...this.firsts]
    for (let i = 0; i < firsts.length; i++) {
      const first = firsts[i]!
      const next = firsts[i + 1]
      if (next !== undefined && next <= after + 1) continue
      if (first > upTo) break
      let text: string
      try {
        text = readFileSync(path.join(this.dir, segName(first)), 'utf8')
      } catch {
        continue // dropped by a roll meanwhile: the reader is told from oldestSeq
      }
      const batch: JournalEntry[] = []
      for (const line of text.split('\n')) {
        const e = parseEntry(line)
        if (e && e.seq > after && e.seq <= upTo) batch.push(e)
      }
      if (batch.length > 0) yield batch
    }
  }

  close(): void {
    this.closed = true
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    this.listeners.clear()
  }

  private open(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    this.firsts = readdirSync(this.dir)
      .map((n) => SEG_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b)
    const last = this.firsts.at(-1)
    if (last === undefined) return
    const file = path.join(this.dir, segName(last))
    const fd = openSync(file, 'r+', 0o600)
    const buf = readFileSync(file)
    // Walk the lines; keep up to the last one that parses and continues the seq.
    let good = 0
    let lastSeq = last - 1
    let events = 0
    let start = 0
    let corrupt = false
    while (start < buf.length) {
      const nl = buf.indexOf(0x0a, start)
      if (nl < 0) {
        corrupt = true // a line without its newline: a torn write
        break
      }
      const e = parseEntry(buf.subarray(start, nl).toString('utf8'))
      if (!e || e.seq <= lastSeq) {
        corrupt = true
        break
      }
      lastSeq = e.seq
      events++
      start = nl + 1
      good = start
    }
    if (corrupt) {
      this.log?.warn({ file, keptBytes: good, droppedBytes: buf.length - good, lastSeq }, 'event journal: corrupt tail truncated')
      ftruncateSync(fd, good)
    }
    this.fd = fd
    this.curBytes = fstatSync(fd).size
    this.curEvents = events
    this.nextSeq = lastSeq + 1
    // Reopen in append mode so every write lands at the end.
    closeSync(fd)
    this.fd = openSync(file, 'a', 0o600)
  }

  private roll(first: number): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    // An empty newest segment is reused (its name must be its first seq).
    const last = this.firsts.at(-1)
    if (last !== undefined && this.curEvents === 0) {
      rmSync(path.join(this.dir, segName(last)), { force: true })
      this.firsts.pop()
    }
    this.fd = openSync(path.join(this.dir, segName(first)), 'a', 0o600)
    this.firsts.push(first)
    this.curBytes = 0
    this.curEvents = 0
    while (this.firsts.length > this.maxSegments) {
      const old = this.firsts.shift()!
      rmSync(path.join(this.dir, segName(old)), { force: true })
    }
  }
}
