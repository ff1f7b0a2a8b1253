import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'

/**
 * A SCRAM-SHA-256 verifier (RFC 5802/7677, Postgres' format), computed here so that
 * `CREATE ROLE … PASSWORD '<verifier>'` never sends the plaintext to the server, where
 * log_statement or pg_stat_statements could keep it.
 * Only for generated ASCII passwords: SASLprep of other input is not implemented.
 */
export function scramVerifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): string {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error('scramVerifier: only printable ASCII passwords are supported')
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

/** 32 random bytes, URL-safe, so the password never needs escaping in a connection URL. */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url')
}
