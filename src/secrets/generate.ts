import { randomBytes } from 'node:crypto'

/** A random URL-safe secret: base64url of `bytes` random bytes (24 → 32 characters). */
export function generateSecret(bytes = 24): string {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1024) throw new RangeError('generateSecret: bytes must be an integer 16..1024')
  return randomBytes(bytes).toString('base64url')
}
