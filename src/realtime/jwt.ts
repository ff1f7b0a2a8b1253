import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * HS256 JSON Web Tokens, as Supabase Realtime accepts them: `role` and `exp` are required,
 * the signature is HMAC-SHA256 with the flock's realtime secret (vault: realtime.jwt.secret).
 * Written against node:crypto directly: HS256 is a dozen lines and the kernel must never
 * accept `alg: none` or an asymmetric algorithm by accident.
 */
export const JWT_SECRET_NAME = 'realtime.jwt.secret'

export type Claims = Record<string, unknown> & { role: string; exp: number }

export type VerifyResult =
  | { ok: true; claims: Claims }
  | { ok: false; reason: 'malformed' | 'signature' | 'expired' | 'missing_claims'; message: string }

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url')

export function newJwtSecret(): string {
  return randomBytes(32).toString('base64url')
}

export function signJwt(claims: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const body = b64url(JSON.stringify(claims))
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

/** Verifies signature, algorithm, `exp` (seconds since the epoch) and `role`. `now` in ms. */
export function verifyJwt(token: unknown, secret: string, now = Date.now()): VerifyResult {
  if (typeof token !== 'string' || token.length > 16_384) return { ok: false, reason: 'malformed', message: 'The token provided is not a valid JWT' }
  const parts = token.split('.')
  if (parts.length !== 3) return { ok: false, reason: 'malformed', message: 'The token provided is not a valid JWT' }
  const [h, b, s] = parts as [string, string, string]
  let header: unknown
  let claims: unknown
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'))
    claims = JSON.parse(Buffer.from(b, 'base64url').toString('utf8'))
  } catch {
    return { ok: false, reason: 'malformed', message: 'The token provided is not a valid JWT' }
  }
  if (!isObject(header) || header.alg !== 'HS256') return { ok: false, reason: 'signature', message: 'Failed to validate JWT signature (only HS256 is accepted)' }
  const want = createHmac('sha256', secret).update(`${h}.${b}`).digest()
  const got = Buffer.from(s, 'base64url')
  if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: 'signature', message: 'Failed to validate JWT signature' }
  if (!isObject(claims) || typeof claims.role !== 'string' || typeof claims.exp !== 'number') {
    return { ok: false, reason: 'missing_claims', message: 'Fields `role` and `exp` are required in JWT' }
  }
  if (claims.exp * 1000 <= now) return { ok: false, reason: 'expired', message: `Token has expired ${Math.round(now / 1000 - claims.exp)} seconds ago` }
  return { ok: true, claims: claims as Claims }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
