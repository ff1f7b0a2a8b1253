/**
 * A key-based redaction guard for structured data that leaves the process (audit records,
 * log lines). It is a last line of defence, not the way secrets are handled: code should not
 * put secret values in details to begin with.
 *
 * A key is secret when it matches SECRET_KEY (password, pass, secret, token, …key) unless it
 * clearly names or counts something (`tokenId`, `secretName`, `secretNames`, `keyCount`):
 * those identify a secret without revealing it and operators need them in the audit trail.
 * Independently of keys, string values that look like a MagFlock API token (`mf_…`) or a
 * connection URL with a password have the secret part replaced.
 */
export const SECRET_KEY = /pass(word)?|secret|token|key$/i
const IDENTIFIER_KEY = /(id|ids|name|names|count)$/i
export const REDACTED = '[redacted]'

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !IDENTIFIER_KEY.test(key)
}

export function redactValue(value: unknown, depth = 0): unknown {
  if (depth > 12) return REDACTED
  if (typeof value === 'string') return redactString(value)
  if (typeof value === 'bigint') return value.toString()
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1))
  if (value !== null && typeof value === 'object') {
    if (value instanceof Date) return value.toISOString()
    if (value instanceof Error) {
      const e: Record<string, unknown> = { type: value.name, message: redactString(value.message) }
      const code = (value as { code?: unknown }).code
      if (code !== undefined) e.code = code
      return e
    }
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = isSecretKey(k) ? REDACTED : redactValue(v, depth + 1)
    }
    return out
  }
  return value
}

export function redactDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
  if (details === undefined) return {}
  return redactValue(details) as Record<string, unknown>
}

const TOKEN_LIKE = /\bmf_[A-Za-z0-9_-]{20,}/g
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)([^@\s]+)@/gi

export function redactString(s: string): string {
  return s.replace(TOKEN_LIKE, 'mf_' + REDACTED).replace(URL_PASSWORD, `$1${REDACTED}@`)
}
