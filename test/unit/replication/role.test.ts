import { describe, expect, it } from 'vitest'
import { scramVerifier } from '../../../src/postgres/sql.js'
import { verifierMatches } from '../../../src/replication/role.js'

describe('replication role password check', () => {
  it('recognises the verifier of the same password (its own salt and iterations) and nothing else', () => {
    const v = scramVerifier('right-password', 4096) as string
    expect(verifierMatches(v, 'right-password')).toBe(true)
    expect(verifierMatches(v, 'wrong-password')).toBe(false)
    expect(verifierMatches(null, 'right-password')).toBe(false)
    expect(verifierMatches('md5abcdef', 'right-password')).toBe(false)
  })
})
