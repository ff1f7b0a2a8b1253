import { describe, expect, it } from 'vitest'
import { alterRolePassword, createRole, quoteIdent, quoteLiteral, scramVerifier } from '../../../src/postgres/sql.js'

describe('postgres/sql quoting', () => {
  it('quotes identifiers by doubling double quotes', () => {
    expect(quoteIdent('app')).toBe('"app"')
    expect(quoteIdent('we"ird')).toBe('"we""ird"')
    expect(() => quoteIdent('')).toThrow()
    expect(() => quoteIdent('a\0b')).toThrow()
  })

  it('quotes literals like PQescapeLiteral, switching to E\'\' when a backslash is present', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'")
    expect(quoteLiteral('a\\b')).toBe(" E'a\\\\b'")
    expect(quoteLiteral("a\\'b")).toBe(" E'a\\\\''b'")
    expect(() => quoteLiteral('a\0')).toThrow()
  })

  it('builds a SCRAM verifier in Postgres\' format, deterministic for a fixed salt', () => {
    const salt = Buffer.alloc(16, 7)
    const v = scramVerifier('pencil', 4096, salt)
    expect(v).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/)
    expect(scramVerifier('pencil', 4096, salt)).toBe(v)
    expect(scramVerifier('pencil2', 4096, salt)).not.toBe(v)
    expect(scramVerifier('pässword')).toBeUndefined()
  })

  it('never puts an ASCII password into role statements, only its verifier', () => {
    const pw = "p'w\\secret"
    for (const q of [alterRolePassword('app', pw), createRole('app', pw)]) {
      expect(q.text).not.toContain('secret')
      expect(q.text).toContain('SCRAM-SHA-256$')
      expect(q.values).toEqual([])
    }
    expect(createRole('ro', undefined, { login: false }).text).toBe('CREATE ROLE "ro" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION')
  })
})
