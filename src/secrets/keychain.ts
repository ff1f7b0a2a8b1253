import { createHash, randomBytes } from 'node:crypto'
import type { SecretStore } from './secret-store.js'
import { KEYCHAIN_UNAVAILABLE } from './errors.js'
import { assertStoreName } from './names.js'
import { redactor } from './redact.js'

/**
 * Secrets in the OS keychain (Secret Service, macOS Keychain, Windows Credential Manager)
 * through @napi-rs/keyring. Keychains cannot enumerate, so the store keeps an index entry
 * (a JSON list of names) beside the secrets. Entries are scoped per state directory:
 * service "magflock", account "<hash of state dir>/<name>", so two flocks on one machine
 * never see each other's secrets.
 */
export interface KeyringEntry {
  getPassword(): string | null
  setPassword(password: string): void
  deletePassword(): boolean
}
export type KeyringEntryClass = new (service: string, account: string) => KeyringEntry

export const KEYCHAIN_SERVICE = 'magflock'
const INDEX = '.index'

export function keychainScope(stateRoot: string): string {
  return createHash('sha256').update(stateRoot).digest('hex').slice(0, 12)
}

export class KeychainStore implements SecretStore {
  constructor(
    private readonly Entry: KeyringEntryClass,
    private readonly scope: string,
  ) {}

  private entry(name: string): KeyringEntry {
    return new this.Entry(KEYCHAIN_SERVICE, `${this.scope}/${name}`)
  }

  private call<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw KEYCHAIN_UNAVAILABLE({ reason: err instanceof Error ? err.message : String(err) }, { cause: err })
    }
  }

  private readIndex(): string[] {
    const raw = this.call(() => this.entry(INDEX).getPassword())
    if (!raw) return []
    try {
      const v = JSON.parse(raw) as unknown
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
    } catch {
      return []
    }
  }

  private writeIndex(names: string[]): void {
    const sorted = [...new Set(names)].sort()
    this.call(() => this.entry(INDEX).setPassword(JSON.stringify(sorted)))
  }

  async get(name: string): Promise<string | undefined> {
    const v = this.call(() => this.entry(name).getPassword())
    if (v === null || v === undefined) return undefined
    redactor.add(v)
    return v
  }

  async set(name: string, value: string): Promise<void> {
    assertStoreName(name)
    redactor.add(value)
    // Secret first, then the index: a crash in between leaves an unlisted secret, which
    // the next set of the same name lists again; never a listed name without a value.
    this.call(() => this.entry(name).setPassword(value))
    const idx = this.readIndex()
    if (!idx.includes(name)) this.writeIndex([...idx, name])
  }

  async delete(name: string): Promise<boolean> {
    const idx = this.readIndex()
    let existed: boolean
    try {
      existed = this.entry(name).deletePassword()
    } catch (err) {
      // Some backends throw NoEntry instead of returning false.
      if (/no (matching )?entry|not found/i.test(err instanceof Error ? err.message : String(err))) existed = false
      else throw KEYCHAIN_UNAVAILABLE({ reason: err instanceof Error ? err.message : String(err) }, { cause: err })
    }
    if (idx.includes(name)) this.writeIndex(idx.filter((n) => n !== name))
    return existed || idx.includes(name)
  }

  async list(): Promise<string[]> {
    return this.readIndex()
  }
}

/** Tries a set/get/delete round trip on a probe entry; the keychain is usable only if all work. */
export function probeKeychain(Entry: KeyringEntryClass, scope: string): { ok: true } | { ok: false; reason: string } {
  try {
    const e = new Entry(KEYCHAIN_SERVICE, `${scope}/.probe`)
    const v = randomBytes(8).toString('hex')
    e.setPassword(v)
    const back = e.getPassword()
    e.deletePassword()
    if (back !== v) return { ok: false, reason: 'a value written to it did not read back' }
    return { ok: true }
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) }
  }
}
