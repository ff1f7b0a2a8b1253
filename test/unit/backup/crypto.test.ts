import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { decryptFrames, encryptFrames, kekFromSecret, keyIdOf, newDataKey, unwrapKey, wrapKey, CryptoFailure } from '../../../src/backup/crypto.js'

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of gen) parts.push(c)
  return Buffer.concat(parts)
}
const enc = (key: Buffer, data: Buffer, frame = 1000) => collect(encryptFrames(key, frame)(Readable.from([data.subarray(0, 1234), data.subarray(1234)])))
const dec = (key: Buffer, data: Buffer) => collect(decryptFrames(key)(Readable.from([data])))

// header 24 bytes; frame = 5 + 12 + ct + 16
function frames(buf: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let off = 24
  while (off < buf.length) {
    const len = 5 + 12 + buf.readUInt32BE(off + 1) + 16
    out.push([off, off + len])
    off += len
  }
  return out
}

describe('backup frame encryption', () => {
  const key = newDataKey()
  const data = Buffer.from(Array.from({ length: 4500 }, (_, i) => i % 251))

  it('round-trips data of any size, including empty and exact multiples of the frame size', async () => {
    expect(await dec(key, await enc(key, data))).toEqual(data)
    expect(await dec(key, await enc(key, Buffer.alloc(0)))).toEqual(Buffer.alloc(0))
    const exact = data.subarray(0, 3000)
    expect(await dec(key, await enc(key, exact))).toEqual(exact)
  })

  it('fails on a flipped bit, a truncated file, dropped final frame and reordered frames', async () => {
    const ct = await enc(key, data)
    const flipped = Buffer.from(ct)
    flipped[100] = flipped[100]! ^ 1
    await expect(dec(key, flipped)).rejects.toBeInstanceOf(CryptoFailure)
    await expect(dec(key, ct.subarray(0, ct.length - 7))).rejects.toThrow(/truncated/)
    const f = frames(ct)
    expect(f.length).toBe(5)
    await expect(dec(key, ct.subarray(0, f[3]![1]))).rejects.toThrow(/no final frame/)
    const swapped = Buffer.concat([ct.subarray(0, 24), ct.subarray(...f[1]!), ct.subarray(...f[0]!), ct.subarray(f[1]![1])])
    await expect(dec(key, swapped)).rejects.toThrow(/authentication/)
    await expect(dec(newDataKey(), ct)).rejects.toThrow(/authentication/)
  })

  it('wraps a data key per backup; the wrong KEK or another backup id cannot unwrap it', () => {
    const kek = kekFromSecret('s3cret')
    const dk = newDataKey()
    const w = wrapKey(kek, dk, 'b1')
    expect(unwrapKey(kek, w, 'b1')).toEqual(dk)
    expect(() => unwrapKey(kekFromSecret('other'), w, 'b1')).toThrow(CryptoFailure)
    expect(() => unwrapKey(kek, w, 'b2')).toThrow(CryptoFailure)
    expect(keyIdOf(kek)).toMatch(/^[0-9a-f]{16}$/)
    expect(keyIdOf(kek)).not.toBe(keyIdOf(kekFromSecret('other')))
    expect(kekFromSecret('ab'.repeat(32))).toEqual(Buffer.from('ab'.repeat(32), 'hex'))
  })
})
