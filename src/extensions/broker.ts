import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { RouteDef } from '../api/route.js'
import { EXTENSION_SELF_ROUTES } from '../api/extensions.js'
import type { MagflockError } from '../errors/index.js'
import type { Authorizer, TokenVerifier, VerifiedToken } from '../kernel/server.js'
import { EXT_DENIED, EXT_RATE_LIMITED, EXT_ROUTE_NEVER_GRANTABLE } from './errors.js'
import { hasGrant } from '../kernel/grants.js'
import { neverGrantable } from './manifest.js'

/**
 * The broker's half of the control server for one extension (docs/extensions.md, "Broker"):
 *
 *  - its token: `mfx_` + 32 random bytes, made at each start of the process and handed to it
 *    in its environment only; the kernel keeps the sha256 in memory, never on disk, so a
 *    restart of the process (or of the kernel) makes the old token worthless;
 *  - its socket accepts this token and nothing else (not an admin's, not another extension's);
 *  - deny by default: a route needs `api:call:<routeId>`, except the ext.self* routes (each
 *    checks its own capability) and routes the never-grantable rule covers (secrets, tokens,
 *    code execution, extension management), which no grant opens;
 *  - a token bucket per extension (100 calls/s, bursts of 200): calls over it are refused with
 *    E_EXT_RATE_LIMITED, and the refusal is audited once per second, not once per call.
 *
 * Grants are read live from the registry at each call, so `ext revoke` takes effect on the
 * next request.
 */
export const EXT_TOKEN_PREFIX = 'mfx_'
export const RATE_PER_SECOND = 100
export const RATE_BURST = 200

export interface BrokerSubject {
  name: string
  grants(): readonly string[]
  /** Every authenticated request (heartbeat for the hang detector). */
  onCall(): void
  /** Refused over the rate limit (the flood detector counts them). */
  onRateLimited(): void
}

export class ExtensionBroker implements TokenVerifier {
  private hash: Buffer | undefined
  private tokenId = ''
  private tokens: number = RATE_BURST
  private lastRefill = Date.now()
  private lastLimitAudit = 0

  constructor(readonly subject: BrokerSubject) {}

  /** A fresh token for the next run; the previous one stops working at once. */
  issue(): string {
    const token = EXT_TOKEN_PREFIX + randomBytes(32).toString('base64url')
    this.hash = createHash('sha256').update(token).digest()
    this.tokenId = `ext-${this.subject.name}-${randomBytes(3).toString('hex')}`
    return token
  }

  revokeToken(): void {
    this.hash = undefined
  }

  verify(token: string): Promise<VerifiedToken | undefined> {
    if (!this.hash || typeof token !== 'string' || !token.startsWith(EXT_TOKEN_PREFIX) || token.length > 512) return Promise.resolve(undefined)
    const presented = createHash('sha256').update(token).digest()
    if (!timingSafeEqual(presented, this.hash)) return Promise.resolve(undefined)
    return Promise.resolve({ id: this.tokenId, name: `ext:${this.subject.name}`, role: 'extension', extension: this.subject.name, grants: this.subject.grants() })
  }

  readonly authorize: Authorizer = (_token, def) => {
    this.subject.onCall()
    if (!this.take()) {
      this.subject.onRateLimited()
      const now = Date.now()
      const audit = now - this.lastLimitAudit >= 1000
      if (audit) this.lastLimitAudit = now
      return { error: EXT_RATE_LIMITED({ name: this.subject.name, perSecond: RATE_PER_SECOND }), audit }
    }
    const error = routeRefusal(this.subject.name, this.subject.grants(), def)
    return error ? { error, audit: true } : undefined
  }

  private take(): boolean {
    const now = Date.now()
    this.tokens = Math.min(RATE_BURST, this.tokens + ((now - this.lastRefill) / 1000) * RATE_PER_SECOND)
    this.lastRefill = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/** Why `name` with `grants` may not call `def` (undefined: it may). Pure, table-tested. */
export function routeRefusal(name: string, grants: readonly string[], def: Pick<RouteDef, 'id' | 'extensions'>): MagflockError | undefined {
  // ext.self* and the routes that check an extension's grants themselves (events, hooks).
  if (EXTENSION_SELF_ROUTES.has(def.id) || def.extensions === true) return undefined
  if (neverGrantable(def.id)) return EXT_ROUTE_NEVER_GRANTABLE({ name, route: def.id })
  const capability = `api:call:${def.id}`
  if (hasGrant({ role: 'extension', tokenId: '', grants }, capability)) return undefined
  return EXT_DENIED({ name, capability, action: `call ${def.id}` })
}
