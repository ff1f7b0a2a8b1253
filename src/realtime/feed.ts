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

  /**
   * @param beforeNewChunk called when the last chunk is full and a new one is about to start,
   *   while every byte appended so far is still in the chunks readers hold: the hub writes
   *   readers with much of the full chunk unsent now, from that chunk alone (a view, no copy).
   */
  constructor(private readonly beforeNewChunk?: () => void) {}

  /** Bytes ever appended. */
  get end(): number {
    return this.tail.base + this.tail.used
  }

  /** A cursor at the end of the log (a reader joining now gets what is appended from now on). */
  cursor(): Cursor {
    return { chunk: this.tail, off: this.tail.used }
  }

  append(frame: Buffer): void {
    const t = this.room(frame.length)
    frame.copy(t.buf, t.used)
    t.used += frame.length
  }

  /**
   * Appends one WebSocket text frame of `prefix` + `body` (UTF-8) + `suffix`, encoding the
   * body straight into the log (no intermediate buffers); returns the frame's length.
   */
  appendText(prefix: Buffer, body: string, suffix: Buffer): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a lone surrogate becomes U+FFFD, 3 bytes).
    // When that bound does not fit what is left of the chunk, the exact length (a scan of the
    // body) is reserved instead, so a big body takes a chunk of its size, not three times it.
    let max = prefix.length + body.length * 3 + suffix.length
    if (this.tail.used + frameHead(max) + max > this.tail.buf.length) max = prefix.length + Buffer.byteLength(body) + suffix.length
    const head = frameHead(max)
    const t = this.room(head + max)
    const buf = t.buf
    const at = t.used
    let o = at + head
    o += prefix.copy(buf, o)
    o += buf.write(body, o)
    o += suffix.copy(buf, o)
    const len = o - at - head
    const need = frameHead(len)
    if (need < head) {
      buf.copyWithin(at + need, at + head, o)
      o -= head - need
    }
    writeFrameHead(buf, at, len)
    t.used = o
    return o - at
  }

  /** The last chunk, a new one if it has not `bytes` free. */
  private room(bytes: number): Chunk {
    const t = this.tail
    if (t.used + bytes <= t.buf.length) return t
    if (t.used > 0) this.beforeNewChunk?.()
    // A chunk about twice what the last one took, so a busy feed writes from few chunks.
    const size = Math.max(bytes, this.nextSize)
    this.nextSize = Math.min(MAX_CHUNK, size * 2)
    const next: Chunk = { buf: Buffer.allocUnsafeSlow(size), used: 0, base: t.base + t.used, next: undefined }
    t.next = next
    this.tail = next
    return next
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

/** Bytes of a server's WebSocket frame header (unmasked) for a payload of `len` bytes. */
export function frameHead(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10
}

/** Writes a final text frame's header (RFC 6455 §5.2) for a payload of `len` bytes at `at`. */
export function writeFrameHead(buf: Buffer, at: number, len: number): void {
  buf[at] = 0x81
  if (len < 126) buf[at + 1] = len
  else if (len < 65536) {
    buf[at + 1] = 126
    buf.writeUInt16BE(len, at + 2)
  } else {
    buf[at + 1] = 127
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), at + 2)
    buf.writeUInt32BE(len >>> 0, at + 6)
  }
}
