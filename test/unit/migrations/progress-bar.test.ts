import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { barText, countsText, frameText, startProgressBar } from '../../../src/ui/progress-bar.js'

describe('progress bar text', () => {
  it('fills the bar in proportion and clamps', () => {
    expect(barText(0.5, 10)).toBe('█████░░░░░')
    expect(barText(2, 4)).toBe('████')
    expect(barText(undefined, 3)).toBe('░░░')
  })

  it('shows counts or bytes', () => {
    expect(countsText({ phase: 'apply', message: '', current: 3, total: 10 })).toBe('3/10')
    expect(countsText({ phase: 'copy', message: '', bytesDone: 1536, bytesTotal: 4 * 1024 * 1024 })).toBe('1.5 KiB/4.0 MiB')
    expect(frameText('Migrating', { phase: 'apply', message: 'applied 3_x.sql', current: 3, total: 4 }, 8)).toBe(
      'Migrating  ██████░░  75%  3/4  applied 3_x.sql',
    )
  })
})

describe('startProgressBar', () => {
  it('renders the bar and the final summary with ink', async () => {
    let out = ''
    const stream = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          out += String(chunk)
          cb()
        },
      }),
      { columns: 100, rows: 20, isTTY: false },
    ) as unknown as NodeJS.WriteStream
    const bar = await startProgressBar({ title: 'Migrating app', stream, width: 10 })
    bar.update({ phase: 'apply', message: 'applied 00002_b.sql', current: 2, total: 4 })
    await new Promise((r) => setTimeout(r, 50))
    await bar.done('applied 4 migrations')
    expect(out).toContain('Migrating app')
    expect(out).toContain('applied 4 migrations')
  })
})
