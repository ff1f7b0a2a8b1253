import { defineError } from '../errors/index.js'

/** Secrets and vault errors. Messages name secrets and files, never values. */

export const SECRET_NOT_FOUND = defineError<{ name: string }>({
  code: 'E_SECRET_NOT_FOUND',
  class: 'not_found',
  area: 'secrets',
  message: (a) => `No secret named "${a.name}" in the vault.`,
  hint: (a) => `Create it with \`magflock secrets set ${a.name} --generate\` (or --from-stdin); \`magflock secrets list\` shows what exists.`,
})

export const SECRET_BAD_NAME = defineError<{ name: string }>({
  code: 'E_SECRET_BAD_NAME',
  class: 'invalid_argument',
  area: 'secrets',
  message: (a) => `"${a.name.slice(0, 80)}" is not a valid secret name (letters, digits, ".", "_" and "-", at most 128, starting with a letter or digit).`,
  hint: () => 'Use a name like `app.db.password` or `backup-kek`.',
})

export const SECRET_NO_VALUE = defineError({
  code: 'E_SECRET_NO_VALUE',
  class: 'invalid_argument',
  area: 'secrets',
  message: () => 'No secret value given.',
  hint: () => 'Pipe it in with `--from-stdin`, let MagFlock make one with `--generate`, or (lands in shell history) pass `--value`.',
})

export const VAULT_BAD_KEY = defineError<{ source: string; reason: string }>({
  code: 'E_VAULT_BAD_KEY',
  class: 'invalid_argument',
  area: 'secrets',
  message: (a) => `The vault master key from ${a.source} is unusable: ${a.reason}.`,
  hint: () => 'MAGFLOCK_MASTER_KEY must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -base64 32`); a key file must be mode 0600.',
})

export const VAULT_KEY_MISSING = defineError<{ vault: string; keyFile: string }>({
  code: 'E_VAULT_KEY_MISSING',
  class: 'failed_precondition',
  area: 'secrets',
  message: (a) => `The vault ${a.vault} exists but its master key is missing (no MAGFLOCK_MASTER_KEY, no ${a.keyFile}).`,
  hint: (a) => `Restore ${a.keyFile} from your backup of it, or set MAGFLOCK_MASTER_KEY to the key the vault was written with. A new key cannot read the old vault.`,
})

export const VAULT_WRONG_KEY = defineError<{ vault: string; source: string }>({
  code: 'E_VAULT_WRONG_KEY',
  class: 'permission_denied',
  area: 'secrets',
  message: (a) => `The master key from ${a.source} is not the key ${a.vault} was written with; the vault was not read or changed.`,
  hint: () => 'Use the right MAGFLOCK_MASTER_KEY (or unset it to use <state>/master.key). `magflock doctor` shows which key source is in use.',
})

export const VAULT_TAMPERED = defineError<{ vault: string; reason: string }>({
  code: 'E_VAULT_TAMPERED',
  class: 'data_loss',
  area: 'secrets',
  message: (a) => `The vault ${a.vault} failed its integrity check (${a.reason}); it was modified or damaged outside MagFlock.`,
  hint: () => 'Nothing was decrypted or changed. Restore secrets.vault from a backup; if you have none, move it aside and set the secrets again.',
})

export const VAULT_BUSY = defineError<{ lock: string; holder: string }>({
  code: 'E_VAULT_BUSY',
  class: 'unavailable',
  area: 'secrets',
  message: (a) => `The vault is locked by another process (${a.holder}); gave up waiting.`,
  hint: (a) => `Retry in a moment. If no MagFlock process is running, remove ${a.lock}.`,
})

export const KEYCHAIN_UNAVAILABLE = defineError<{ reason: string }>({
  code: 'E_KEYCHAIN_UNAVAILABLE',
  class: 'unavailable',
  area: 'secrets',
  message: (a) => `The OS keychain holds this flock's secrets but cannot be used now: ${a.reason}.`,
  hint: () => 'Unlock the keychain (log in to a desktop session / start the secret service) and retry; `magflock doctor` shows the store in use.',
})

export const ROTATE_FAILED = defineError<{ name: string; role: string; step: string; reason: string }>({
  code: 'E_ROTATE_FAILED',
  class: 'aborted',
  area: 'secrets',
  message: (a) => `Rotating "${a.name}" (role ${a.role}) failed at ${a.step}: ${a.reason}. The old password still works and is still in the vault.`,
  hint: (a) => `Fix the cause and run \`magflock secrets rotate ${a.name}\` again.`,
})

export const ROTATE_INCOMPLETE = defineError<{ name: string; role: string; reason: string }>({
  code: 'E_ROTATE_INCOMPLETE',
  class: 'data_loss',
  area: 'secrets',
  message: (a) =>
    `Rotating "${a.name}" changed role ${a.role}'s password but could neither record it nor roll it back (${a.reason}). The new password is kept in the vault as "${a.name}@pending".`,
  hint: (a) => `Run \`magflock secrets rotate ${a.name}\` again: it finishes a pending rotation first.`,
})

export const VAULT_MISSING = defineError<{ vault: string; marker: string }>({
  code: 'E_VAULT_MISSING',
  class: 'failed_precondition',
  area: 'secrets',
  message: (a) => `The vault ${a.vault} is missing, but this flock had one (${a.marker} records it); MagFlock will not create an empty vault in its place.`,
  hint: (a) =>
    `Restore ${a.vault} from your backup (with the master key it was written with). If it is lost for good, move ${a.marker} aside to start an empty vault: every secret, the superuser password included, must then be set again.`,
})

export const SECRET_MISSING = defineError<{ name: string; purpose: string }>({
  code: 'E_SECRET_MISSING',
  class: 'failed_precondition',
  area: 'secrets',
  message: (a) => `The secret "${a.name}" (${a.purpose}) is not in the secret store.`,
  hint: (a) =>
    `Restore the vault (or keychain entry) from a backup; if the value is lost, set a new one with \`magflock secrets set ${a.name} --from-stdin\` and make the database agree (ALTER ROLE … PASSWORD as a superuser).`,
})
