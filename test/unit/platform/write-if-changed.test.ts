import { afterAll, describe, expect, it } from 'vitest'
import { chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { writeFileAtomicIfChanged, writeJsonAtomicIfChanged } from '../../../src/platform/fs.js'

describe('writeFileAtomicIfChanged', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-wic-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('writes a missing file, then leaves the same content and mode alone', async () => {
    const f = path.join(dir, 'a.json')
    expect(await writeFileAtomicIfChanged(f, 'one\n', { mode: 0o600 })).toBe(true)
    expect(readFileSync(f, 'utf8')).toBe('one\n')
    expect(statSync(f).mode & 0o777).toBe(0o600)
    const ino = statSync(f).ino
    expect(await writeFileAtomicIfChanged(f, 'one\n', { mode: 0o600 })).toBe(false)
    expect(statSync(f).ino).toBe(ino)
  })

  it('rewrites other content, another mode, or a symlink in its place', async () => {
    const f = path.join(dir, 'b')
    await writeFileAtomicIfChanged(f, 'one\n', { mode: 0o600 })
    expect(await writeFileAtomicIfChanged(f, 'two\n', { mode: 0o600 })).toBe(true)
    expect(readFileSync(f, 'utf8')).toBe('two\n')
    chmodSync(f, 0o644)
    expect(await writeFileAtomicIfChanged(f, 'two\n', { mode: 0o600 })).toBe(true)
    expect(statSync(f).mode & 0o777).toBe(0o600)
    const target = path.join(dir, 'target')
    writeFileSync(target, 'two\n', { mode: 0o600 })
    const link = path.join(dir, 'link')
    symlinkSync(target, link)
    expect(await writeFileAtomicIfChanged(link, 'two\n', { mode: 0o600 })).toBe(true)
    expect(lstatSync(link).isFile()).toBe(true)
  })

  it('writes JSON as writeJsonAtomic does, and leaves the same value alone', async () => {
    const f = path.join(dir, 'c.json')
    expect(await writeJsonAtomicIfChanged(f, { a: 1 })).toBe(true)
    expect(readFileSync(f, 'utf8')).toBe('{\n  "a": 1\n}\n')
    expect(await writeJsonAtomicIfChanged(f, { a: 1 })).toBe(false)
    expect(await writeJsonAtomicIfChanged(f, { a: 2 })).toBe(true)
  })
})
