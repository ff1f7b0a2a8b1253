import { randomBytes } from 'node:crypto'
import { scramVerifier as pgScramVerifier } from '../postgres/sql.js'

/**
 * The owner's SCRAM-SHA-256 verifier (one implementation: src/postgres/sql.ts), so that
 * `CREATE ROLE … PASSWORD '<verifier>'` never sends the plaintext to the server. Generated
 * owner passwords are ASCII; anything else is refused rather than sent in the clear.
 */
export function scramVerifier(password: string): string {
  const v = pgScramVerifier(password)
  if (v === undefined) throw new Error('scramVerifier: only printable ASCII passwords are supported')
  return v
}

/** 32 random bytes, URL-safe, so the password never needs escaping in a connection URL. */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url')
}
