import { existsSync, writeFileSync } from 'node:fs'
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks'
import type { Change } from './change.js'

/**
 * Bench-only phase trace of the change path (bench/realtime.mjs sets
 * `MAGFLOCK_REALTIME_TRACE=<file>` in the kernel's environment). Off by default: `trace` is then
 * undefined and every call site is one `trace?.` test, nothing else.
 *
 * On, it stamps each change (wall clock with sub-millisecond precision) at: its commit (the
 * commit time of pgoutput's BEGIN, in µs), the walsender's send (the clock field of the
 * XLogData message carrying the row), the kernel's receipt of that message (its copyData
 * handler), the frames being queued (decode, match and frame build done) and the end of the
 * flush slice that wrote the last of them (every recipient's socket written; the hub writes
 * its queue of clients in slices, see Hub.flushSlice), and every second writes p50/p99 per phase,
 * the kernel's event-loop delay and its GC pauses to the file (overwritten). It records only
 * while the file exists (checked once a second): the bench creates it for the part it traces
 * (figures start afresh then) and deletes it after, so the other parts run untraced.
 */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1)
const wall = (): number => performance.timeOrigin + performance.now()
const usToMs = (us: bigint): number => Number(us) / 1000 + PG_EPOCH_MS

interface Stamps {
  commit: number
  send: number
  recv: number
  queued?: number
  /** Written once the hub has taken this many clients from its queue. */
  ticket?: number
}

const PHASES = ['commit_to_walsend', 'walsend_to_recv', 'recv_to_queued', 'queued_to_written', 'flush_writes', 'commit_to_written'] as const
type Phase = (typeof PHASES)[number]
const MAX_SAMPLES = 200_000

class PhaseTrace {
  private readonly stamps = new WeakMap<Change, Stamps>()
  private commitMs = 0
  private sendMs = 0
  private recvMs = 0
  /** Queued changes not yet written to every recipient, in queue order. */
  private turn: Stamps[] = []
  private readonly samples = new Map<Phase, number[]>(PHASES.map((p) => [p, []]))
  private readonly loop = monitorEventLoopDelay({ resolution: 1 })
  private readonly gc: number[] = []
  private flushes = 0
  private flushedClients = 0

  constructor(private readonly file: string) {
    this.loop.enable()
    new PerformanceObserver((list) => {
      if (this.active) for (const e of list.getEntries()) if (this.gc.length < MAX_SAMPLES) this.gc.push(e.duration)
    }).observe({ entryTypes: ['gc'] })
    setInterval(() => this.tick(), 1000).unref()
  }

  /** A BEGIN message: its commit time, µs since 2000-01-01 at `at`. */
  begin(buf: Buffer, at: number): void {
    if (!this.active) return
    this.commitMs = usToMs(buf.readBigInt64BE(at))
  }

  /** An XLogData message arrived (`b` from its 'w' byte): the walsender's send clock. */
  received(b: Buffer): void {
    if (!this.active) return
    this.recvMs = wall()
    this.sendMs = usToMs(b.readBigInt64BE(17))
  }

  decoded(ch: Change): void {
    if (!this.active) return
    this.stamps.set(ch, { commit: this.commitMs, send: this.sendMs, recv: this.recvMs })
  }

  /** The change's frames are queued; all written once the hub has taken `ticket` clients. */
  queued(ch: Change, ticket: number): void {
    const s = this.stamps.get(ch)
    if (!s) return
    s.queued = wall()
    s.ticket = ticket
    this.turn.push(s)
  }

  flushStart(): number | undefined {
    return this.active ? wall() : undefined
  }

  /** A flush slice wrote `clients` sockets; the hub has now taken `taken` clients in all. */
  flushEnd(start: number, clients: number, taken: number): void {
    const end = wall()
    this.flushes++
    this.flushedClients += clients
    this.add('flush_writes', end - start)
    let i = 0
    for (; i < this.turn.length && this.turn[i]!.ticket! <= taken; i++) {
      const s = this.turn[i]!
      this.add('commit_to_walsend', s.send - s.commit)
      this.add('walsend_to_recv', s.recv - s.send)
      this.add('recv_to_queued', s.queued! - s.recv)
      this.add('queued_to_written', end - s.queued!)
      this.add('commit_to_written', end - s.commit)
    }
    if (i > 0) this.turn.splice(0, i)
  }

  private add(p: Phase, ms: number): void {
    const a = this.samples.get(p)!
    if (a.length < MAX_SAMPLES) a.push(ms)
  }

  private active = false

  private tick(): void {
    const on = existsSync(this.file)
    if (on && !this.active) this.reset()
    this.active = on
    if (on) this.write()
  }

  private write(): void {
    const q = (a: number[], f: number): number | null => {
      if (a.length === 0) return null
      const s = [...a].sort((x, y) => x - y)
      return Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))]! * 1000) / 1000
    }
    const out: Record<string, unknown> = {
      phases: Object.fromEntries(PHASES.map((p) => [p, { p50: q(this.samples.get(p)!, 0.5), p99: q(this.samples.get(p)!, 0.99), n: this.samples.get(p)!.length }])),
      flushes: this.flushes,
      clientsPerFlush: this.flushes ? this.flushedClients / this.flushes : null,
      eventLoopDelayMs: { p50: this.loop.percentile(50) / 1e6, p99: this.loop.percentile(99) / 1e6, max: this.loop.max / 1e6 },
      gc: { count: this.gc.length, totalMs: this.gc.reduce((x, y) => x + y, 0), p99Ms: q(this.gc, 0.99), maxMs: this.gc.length ? Math.max(...this.gc) : null },
    }
    try {
      writeFileSync(this.file, JSON.stringify(out))
    } catch {
      // A bench aid: a file that cannot be written only loses the trace.
    }
  }

  private reset(): void {
    this.turn = []
    for (const a of this.samples.values()) a.length = 0
    this.gc.length = 0
    this.loop.reset()
    this.flushes = 0
    this.flushedClients = 0
  }
}

const file = process.env.MAGFLOCK_REALTIME_TRACE
export const trace: PhaseTrace | undefined = file ? new PhaseTrace(file) : undefined
