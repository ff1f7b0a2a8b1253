import { describe, expect, it } from 'vitest'
import { clearBinaryCache, discoverySteps, findPgBinaries } from '../../../src/postgres/binaries.js'

describe('postgres/binaries', () => {
  it('finds a usable Postgres with its major version and tool paths', () => {
    clearBinaryCache()
    const b = findPgBinaries()
    expect(b.major).toBeGreaterThanOrEqual(13)
    expect(b.tool('postgres')).toBe(`${b.binDir}/postgres`)
    expect(b.has('initdb')).toBe(true)
    expect(discoverySteps().some((s) => s.usable && s.dir === b.binDir)).toBe(true)
  })

  it('names the missing tool with E_BINARY_MISSING', () => {
    const b = findPgBinaries()
    expect(() => b.tool('no_such_tool' as never)).toThrow(expect.objectContaining({ code: 'E_BINARY_MISSING' }))
    expect(() => findPgBinaries('/nonexistent/bin')).toThrow(expect.objectContaining({ code: 'E_BINARY_MISSING' }))
  })
})
