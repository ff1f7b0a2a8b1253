import { describe, expect, it } from 'vitest'
import { FrameLog } from '../../src/realtime/feed.js'
import { textFrame } from '../../src/realtime/hub.js'

const frame = (s: string) => Buffer.from(s)

describe('realtime feed log', () => {
  it('gives each reader what was appended after its cursor, once, as one view of the last chunk', () => {
    const log = new FrameLog()
    const a = log.cursor()
    log.append(frame('one;'))
    const b = log.cursor()
    log.append(frame('two;'))
    expect(log.pending(a)).toBe(8)
    expect(log.pending(b)).toBe(4)
    const first = log.take(a)!
    expect(first.toString()).toBe('one;two;')
    expect(log.take(a)).toBeUndefined()
    expect(log.take(b)!.toString()).toBe('two;')
    // Readers at the same place get the very same Buffer (one view, shared by their writes).
    const c = log.cursor()
    const d = log.cursor()
    log.append(frame('three;'))
    const x = log.take(c)!
    expect(log.take(d)).toBe(x)
    expect(x.buffer).toBe(first.buffer)
  })

  it('joins what spans chunks, and never changes bytes already handed out', () => {
    const log = new FrameLog()
    const slow = log.cursor()
    const fast = log.cursor()
    const views: Buffer[] = []
    let expected = ''
    for (let i = 0; i < 2000; i++) {
      const f = `frame ${i} ${'x'.repeat(i % 97)};`
      expected += f
      log.append(frame(f))
      if (i % 10 === 9) views.push(log.take(fast)!)
    }
    expect(Buffer.concat(views).toString()).toBe(expected)
    expect(log.pending(slow)).toBe(Buffer.byteLength(expected))
    expect(log.take(slow)!.toString()).toBe(expected)
    // A frame larger than any chunk gets a chunk of its own.
    const big = 'y'.repeat(200_000)
    log.append(frame(big))
    expect(log.take(fast)!.toString()).toBe(big)
    expect(Buffer.concat(views).toString()).toBe(expected)
  })

  it('gives its buffer back on release once every reader is at the end, and goes on after', () => {
    const log = new FrameLog()
    const r = log.cursor()
    log.append(frame('a;'))
    const held = log.take(r)!
    expect(log.capacity).toBeGreaterThan(0)
    log.release()
    expect(log.capacity).toBe(0)
    expect(held.toString()).toBe('a;')
    expect(log.take(r)).toBeUndefined()
    log.append(frame('b;'))
    expect(log.take(r)!.toString()).toBe('b;')
    expect(log.end).toBe(4)
  })

  it('encodes a text frame straight into the log with the bytes textFrame gives, whatever its length and characters', () => {
    const log = new FrameLog()
    const r = log.cursor()
    const prefix = Buffer.from('["1",null,"realtime:t","postgres_changes",{"ids":[1],"data":')
    const suffix = Buffer.from('}]')
    const bodies = ['', 'x', 'é'.repeat(20), 'a'.repeat(60), 'a'.repeat(61), 'a'.repeat(62), '€'.repeat(30), '😀 and \ud800 alone', 'b'.repeat(65_535 - prefix.length - suffix.length), 'b'.repeat(65_536 - prefix.length - suffix.length), 'ü'.repeat(40_000), 'c'.repeat(200_000)]
    // Around the header's sizes: payloads of 125/126 bytes, 65,535/65,536, and a body whose
    // bound (3 bytes a character) asks for a bigger header than its bytes need.
    let expected = Buffer.alloc(0)
    for (const body of bodies) {
      const want = textFrame(`${prefix.toString()}${body}${suffix.toString()}`)
      expect(log.appendText(prefix, body, suffix)).toBe(want.length)
      expected = Buffer.concat([expected, want])
    }
    expect(log.take(r)!.equals(expected)).toBe(true)
  })

  it('reserves a big body by its length (a chunk its size, not three times it) and says when a full chunk is left behind', () => {
    let full = 0
    const log = new FrameLog(() => {
      // Called before the new chunk starts: what was appended is still there for readers.
      expect(log.pending(r)).toBe(log.end)
      full++
    })
    const r = log.cursor()
    const prefix = Buffer.from('[null,null,"realtime:t","postgres_changes",{"ids":[1],"data":')
    const suffix = Buffer.from('}]')
    const body = 'x'.repeat(30_000)
    const want = textFrame(`${prefix.toString()}${body}${suffix.toString()}`)
    log.appendText(prefix, body, suffix)
    // The bound (3 bytes a character) would have taken a 90 KB chunk for this one frame.
    expect(log.capacity).toBe(want.length)
    expect(full).toBe(0)
    log.appendText(prefix, body, suffix)
    expect(full).toBe(1)
    // The next chunk is twice the last one: the third frame fits beside the second.
    log.appendText(prefix, body, suffix)
    expect(full).toBe(1)
    expect(log.capacity).toBe(2 * want.length)
    expect(log.take(r)!.equals(Buffer.concat([want, want, want]))).toBe(true)
  })
})

