import type { SecretStore } from '../kernel/services.js'
import { JWT_SECRET_NAME, newJwtSecret, signJwt } from './jwt.js'
import { REALTIME_BAD_CLAIMS, REALTIME_BAD_ROLE } from './errors.js'

/**
 * The flock's realtime signing secret: generated into the vault on first use, never printed.
 * Tokens are HS256 JWTs, so an application backend holding the secret may mint its own.
 */
export async function realtimeSecret(secrets: SecretStore): Promise<string> {
  let s = await secrets.get(JWT_SECRET_NAME)
  if (!s) {
    s = newJwtSecret()
    await secrets.set(JWT_SECRET_NAME, s)
  }
  return s
}

export interface TokenRequest {
  role: string
  claims?: Record<string, unknown> | undefined
  expiresInSeconds: number
}

const ROLE = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/
const RESERVED = new Set(['role', 'exp', 'iat'])

export async function issueToken(secrets: SecretStore, req: TokenRequest, now = Date.now()): Promise<{ token: string; role: string; expiresAt: string; claimKeys: string[] }> {
  if (!ROLE.test(req.role)) throw REALTIME_BAD_ROLE({ role: req.role })
  const extra = req.claims ?? {}
  for (const k of Object.keys(extra)) if (RESERVED.has(k)) throw REALTIME_BAD_CLAIMS({ reason: `"${k}" is set by --role/--expires, not --claims` })
  if (JSON.stringify(extra).length > 4096) throw REALTIME_BAD_CLAIMS({ reason: 'claims larger than 4 KiB' })
  const iat = Math.floor(now / 1000)
  const exp = iat + req.expiresInSeconds
  const token = signJwt({ ...extra, role: req.role, iat, exp }, await realtimeSecret(secrets))
  return { token, role: req.role, expiresAt: new Date(exp * 1000).toISOString(), claimKeys: Object.keys(extra).sort() }
}
