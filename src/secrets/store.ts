import { promises as fsp } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import type { SecretStore } from './secret-store.js'
import type { StateLayout } from '../platform/paths.js'
import { KEYCHAIN_UNAVAILABLE } from './errors.js'
import { KeychainStore, keychainScope, probeKeychain, type KeyringEntryClass } from './keychain.js'
import { FileVault, readStoreMarker, writeStoreMarker } from './vault.js'

/**
 * Picks the secret store for a flock: the OS keychain when it is usable, otherwise the
 * encrypted vault file. The choice is sticky: once a flock keeps its secrets in the keychain
 * (recorded in <state>/secrets.json), a keychain that later fails is an error, never a
 * silent switch to an empty vault; and an existing vault file is always used.
 */
export type StoreKind = 'keychain' | 'file'

export interface SecretStoreImpl extends SecretStore {
  kind: StoreKind
  /** Why this store, one sentence for `magflock doctor`. */
  reason: string
  /** The vault file, or "OS keychain (service magflock, scope …)". */
  location: string
}

export interface StoreDecisionInput {
  /** MAGFLOCK_SECRETS_STORE: 'file' | 'keychain' | undefined */
  forced: string | undefined
  vaultExists: boolean
  /** What <state>/secrets.json recorded, if anything. */
  recorded: StoreKind | undefined
  preferKeychain: boolean
  /** Called only when the decision depends on it. */
  probe: () => { ok: true } | { ok: false; reason: string }
}

/** Pure decision, table-tested. Throws E_KEYCHAIN_UNAVAILABLE when the keychain is required but fails. */
export function decideStore(i: StoreDecisionInput): { kind: StoreKind; reason: string } {
  if (i.forced === 'file') return { kind: 'file', reason: 'MAGFLOCK_SECRETS_STORE=file selects the encrypted vault file' }
  if (i.vaultExists && i.forced !== 'keychain') return { kind: 'file', reason: 'this flock already keeps its secrets in the encrypted vault file' }
  // A vault this flock had and lost is an error (E_VAULT_MISSING on use), never a switch.
  if (i.recorded === 'file' && i.forced !== 'keychain') return { kind: 'file', reason: 'this flock keeps its secrets in the encrypted vault file' }
  const required = i.forced === 'keychain' || i.recorded === 'keychain'
  if (!required && !i.preferKeychain) return { kind: 'file', reason: 'the OS keychain is not preferred here; using the encrypted vault file' }
  const p = i.probe()
  if (p.ok) {
    return {
      kind: 'keychain',
      reason: required && i.recorded === 'keychain' ? 'this flock keeps its secrets in the OS keychain' : 'the OS keychain is usable',
    }
  }
  if (required) throw KEYCHAIN_UNAVAILABLE({ reason: p.reason })
  return { kind: 'file', reason: `the OS keychain is not usable here (${p.reason}); using the encrypted vault file` }
}

export interface OpenStoreOptions {
  layout: StateLayout
  environ?: NodeJS.ProcessEnv
  /** Default true: use the OS keychain when it works. */
  preferKeychain?: boolean
  /** Read commands: never write (no marker file, no directory). */
  readOnly?: boolean
  /** For tests: the keyring Entry class (default: @napi-rs/keyring's). */
  Entry?: KeyringEntryClass
}

export async function openSecretStore(opts: OpenStoreOptions): Promise<SecretStoreImpl> {
  const environ = opts.environ ?? process.env
  const { layout } = opts
  const marker = path.join(layout.root, 'secrets.json')
  const recorded = await readStoreMarker(marker)
  const vaultExists = await fsp.stat(layout.secretsVault).then(() => true, () => false)
  const scope = keychainScope(layout.root)
  let Entry = opts.Entry
  const probe = (): { ok: true } | { ok: false; reason: string } => {
    if (!Entry) {
      const loaded = loadKeyring()
      if ('reason' in loaded) return { ok: false, reason: loaded.reason }
      Entry = loaded.Entry
    }
    return probeKeychain(Entry, scope)
  }
  const decision = decideStore({
    forced: environ.MAGFLOCK_SECRETS_STORE,
    vaultExists,
    recorded,
    preferKeychain: opts.preferKeychain ?? true,
    probe,
  })
  if (decision.kind === 'keychain') {
    if (recorded !== 'keychain' && opts.readOnly !== true) {
      await fsp.mkdir(layout.root, { recursive: true, mode: 0o700 })
      await writeStoreMarker(marker, 'keychain', { scope })
    }
    const ks = new KeychainStore(Entry!, scope)
    return Object.assign(bind(ks), { kind: 'keychain' as const, reason: decision.reason, location: `OS keychain (service magflock, scope ${scope})` })
  }
  // A vault from before the marker existed: record it now, so losing it later is noticed.
  if (vaultExists && recorded === undefined && opts.readOnly !== true) await writeStoreMarker(marker, 'file')
  const vault = new FileVault(layout, environ)
  return Object.assign(bind(vault), { kind: 'file' as const, reason: decision.reason, location: layout.secretsVault })
}

function bind(s: SecretStore): SecretStore {
  return {
    get: (n) => s.get(n),
    set: (n, v) => s.set(n, v),
    delete: (n) => s.delete(n),
    list: () => s.list(),
  }
}

// @napi-rs/keyring is a native module: load it lazily (and survive its absence) so the file
// vault works on machines where the prebuilt binary does not load.
let keyring: { Entry: KeyringEntryClass } | { reason: string } | undefined
function loadKeyring(): { Entry: KeyringEntryClass } | { reason: string } {
  if (keyring) return keyring
  try {
    // createRequire keeps this synchronous; the package ships CommonJS.
    const req = createRequire(import.meta.url)
    const mod = req('@napi-rs/keyring') as { Entry: KeyringEntryClass }
    keyring = { Entry: mod.Entry }
  } catch (err) {
    keyring = { reason: `@napi-rs/keyring did not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` }
  }
  return keyring
}
