/**
 * Process-wide redaction of secret values. The vault registers every value it reads or
 * writes; logs, CLI output, error messages and audit records pass through `scrub` before
 * they leave the process. Values shorter than MIN_LENGTH are not registered: scrubbing
 * "ab" out of every line would mangle output without protecting anything real (generated
 * secrets are 32 characters).
 */
export const MIN_LENGTH = 4
export const MASK = '***'

export class Redactor {
  private values = new Set<string>()
  private sorted: string[] | undefined

  add(value: string | undefined | null): void {
    if (typeof value !== 'string' || value.length < MIN_LENGTH || this.values.has(value)) return
    this.values.add(value)
    // Encoded forms that commonly end up in URLs, JSON and logs.
    const uri = encodeURIComponent(value)
    if (uri !== value) this.values.add(uri)
    const json = JSON.stringify(value).slice(1, -1)
    if (json !== value) this.values.add(json)
    this.sorted = undefined
  }

  get size(): number {
    return this.values.size
  }

  scrub(text: string): string {
    if (this.values.size === 0 || !text) return text
    // Longest first, so a secret that contains another is masked whole.
    this.sorted ??= [...this.values].sort((a, b) => b.length - a.length)
    let out = text
    for (const v of this.sorted) if (out.includes(v)) out = out.split(v).join(MASK)
    return out
  }

  /** Deep copy of a JSON-like value with every string scrubbed. */
  scrubValue<T>(value: T): T {
    if (typeof value === 'string') return this.scrub(value) as T
    if (Array.isArray(value)) return value.map((v) => this.scrubValue(v)) as T
    if (value && typeof value === 'object' && (value.constructor === Object || Object.getPrototypeOf(value) === null)) {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value)) out[k] = this.scrubValue(v)
      return out as T
    }
    return value
  }
}

/** The instance the vault feeds and the logger / CLI output use. */
export const redactor = new Redactor()

/**
 * Pino hook: `pino({ hooks: pinoRedactHooks() })` scrubs every serialized log line
 * before it is written.
 */
export function pinoRedactHooks(r: Redactor = redactor): { streamWrite: (s: string) => string } {
  return { streamWrite: (s: string) => r.scrub(s) }
}
