/**
 * An append-only log of WebSocket frame bytes shared by every subscriber that is sent the same
 * frames (the hub's "feed": one per distinct postgres_changes subscription, see Hub). A change
 * is copied into the log once, however many subscribers read it; each reader keeps a cursor,
 * and what it has not been written yet is one contiguous slice of the log's last chunk (a view,
 * no copy) unless it spans chunks.
 *
 * Bytes once appended are never overwritten, so a view handed to a socket write stays valid
 * while the write is in flight. A chunk no cursor points into is garbage; a caught-up log drops
 * its last chunk's buffer on `release()` (an idle feed holds no buffer).
 */
export interface Chunk {
  buf: Buffer
  /** Bytes used in buf. */
  used: number
  /** Offset of buf[0] in the log (bytes ever appended before this chunk). */
  readonly base: number
  next: Chunk | undefined
}

/** A reader's position: `off` bytes into `chunk`. */
export interface Cursor {
  chunk: Chunk
  off: number
}

const EMPTY = Buffer.alloc(0)
const MIN_CHUNK = 4 * 1024
const MAX_CHUNK = 64 * 1024

export class FrameLog {
  private tail: Chunk = { buf: EMPTY, used: 0, base: 0, next: undefined }
  private nextSize = MIN_CHUNK
  /** The last view handed out: readers at the same position get the same Buffer object. */
  private view: { chunk: Chunk; start: number; end: number; buf: Buffer } | undefined

  /** Bytes ever appended. */
  get end(): number {
    return this.tail.base + this.tail.used
  }

  /** A cursor at the end of the log (a reader joining now gets what is appended from now on). */
  cursor(): Cursor {
    return { chunk: this.tail, off: this.tail.used }
  }

  append(frame: Buffer): void {
    let t = this.tail
    if (t.used + frame.length > t.buf.length) {
      // A chunk about twice what the last one took, so a busy feed writes from few chunks.
      const size = Math.max(frame.length, this.nextSize)
      this.nextSize = Math.min(MAX_CHUNK, size * 2)
      const next: Chunk = { buf: Buffer.allocUnsafeSlow(size), used: 0, base: t.base + t.used, next: undefined }
      t.next = next
      this.tail = t = next
    }
    frame.copy(t.buf, t.used)
    t.used += frame.length
  }

  pending(c: Cursor): number {
    return this.end - (c.chunk.base + c.off)
  }

  /** The bytes after the cursor (undefined: none), and the cursor moved to the end. */
  take(c: Cursor): Buffer | undefined {
    const t = this.tail
    // Past chunks it has read to the end (one it joined at, or one released).
    while (c.chunk !== t && c.off >= c.chunk.used) {
      c.chunk = c.chunk.next!
      c.off = 0
    }
    if (c.chunk === t) {
      const start = c.off
      if (start === t.used) return undefined
      c.off = t.used
      const v = this.view
      if (v && v.chunk === t && v.start === start && v.end === t.used) return v.buf
      const buf = t.buf.subarray(start, t.used)
      this.view = { chunk: t, start, end: t.used, buf }
      return buf
    }
    // Behind by more than a chunk (rare: a chunk holds many frames).
    const parts: Buffer[] = []
    let bytes = 0
    for (let k: Chunk | undefined = c.chunk, off = c.off; k; k = k.next, off = 0) {
      if (k.used > off) {
        parts.push(k.buf.subarray(off, k.used))
        bytes += k.used - off
      }
    }
    c.chunk = t
    c.off = t.used
    return parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes)
  }

  /**
   * Every cursor is at the end: the last chunk's buffer goes (views already handed out keep
   * their bytes), and the next append starts a small chunk again.
   */
  release(): void {
    if (this.tail.buf.length === 0) return
    this.tail.buf = EMPTY
    this.nextSize = MIN_CHUNK
    this.view = undefined
  }

  /** Bytes held in the last chunk's buffer (0 once released). */
  get capacity(): number {
    return this.tail.buf.length
  }
}
