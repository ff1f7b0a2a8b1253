import type { HubStatus } from './hub.js'
import type { StreamStatus } from './stream.js'

/**
 * What the running realtime component exposes to the control API (`realtime status`). The
 * component publishes it in the daemon's live component slots (src/daemon/services.ts) at
 * start and clears it at stop.
 */
export interface RealtimeRuntime {
  url: string
  database: string
  hub(): HubStatus
  stream(): StreamStatus
  backlog(): number
  commitToSend(): { p50Ms: number | null; p99Ms: number | null; samples: number }
  /** Which socket writer the hub uses (src/realtime/native.ts). */
  writer(): { native: boolean; detail: string; yieldsCpu: boolean }
  droppedSlow(): number
  protocolErrors(): number
}

/** A fixed ring of recent latencies for p50/p99 without unbounded memory. */
export class LatencyRing {
  private readonly buf: Float64Array
  private n = 0
  private i = 0
  constructor(size = 4096) {
    this.buf = new Float64Array(size)
  }
  add(ms: number): void {
    this.buf[this.i] = ms
    this.i = (this.i + 1) % this.buf.length
    if (this.n < this.buf.length) this.n++
  }
  summary(): { p50Ms: number | null; p99Ms: number | null; samples: number } {
    if (this.n === 0) return { p50Ms: null, p99Ms: null, samples: 0 }
    const a = Array.from(this.buf.subarray(0, this.n)).sort((x, y) => x - y)
    const q = (p: number) => a[Math.min(a.length - 1, Math.floor(p * a.length))]!
    return { p50Ms: q(0.5), p99Ms: q(0.99), samples: this.n }
  }
}
