import { defineError } from '../errors/index.js'

// Errors of the tls area: the flock CA, node certificates, TLS listeners.

export const TLS_ALREADY_INITIALIZED = defineError<{ dir: string }>({
  code: 'E_TLS_ALREADY_INITIALIZED',
  class: 'already_exists',
  area: 'tls',
  message: (a) => `This flock already has a CA (${a.dir}).`,
  hint: () => 'Issue a new node certificate with `magflock tls rotate`, or a new CA and certificate with `magflock tls rotate --ca`.',
})

export const TLS_NOT_INITIALIZED = defineError<Record<string, never>>({
  code: 'E_TLS_NOT_INITIALIZED',
  class: 'failed_precondition',
  area: 'tls',
  message: () => 'This flock has no certificates yet.',
  hint: () => "Create the flock CA and this node's certificate with `magflock tls init`, or set tls.caFile, tls.certFile and tls.keyFile to your own.",
})

export const TLS_OPERATOR_MANAGED = defineError<Record<string, never>>({
  code: 'E_TLS_OPERATOR_MANAGED',
  class: 'failed_precondition',
  area: 'tls',
  message: () => 'This flock uses your own certificates (tls.caFile, tls.certFile, tls.keyFile); MagFlock does not issue or rotate them.',
  hint: () => 'Replace the files and run `magflock config reload`, or unset the tls.*File keys to let MagFlock manage a flock CA.',
})

export const TLS_FILES_INCOMPLETE = defineError<{ missing: string[] }>({
  code: 'E_TLS_FILES_INCOMPLETE',
  class: 'invalid_argument',
  area: 'tls',
  message: (a) => `Your own certificates need tls.caFile, tls.certFile and tls.keyFile together; missing: ${a.missing.join(', ')}.`,
  hint: () => 'Set all three (`magflock config set tls.caFile /etc/magflock/ca.crt` …) or none.',
})

export const TLS_FILE_UNREADABLE = defineError<{ key: string; file: string; reason: string }>({
  code: 'E_TLS_FILE_UNREADABLE',
  class: 'invalid_argument',
  area: 'tls',
  message: (a) => `${a.key} (${a.file}) cannot be used: ${a.reason}.`,
  hint: (a) => `Point ${a.key} at a readable PEM file (\`magflock config set ${a.key} PATH\`).`,
})

export const TLS_CERT_MISMATCH = defineError<{ reason: string }>({
  code: 'E_TLS_CERT_MISMATCH',
  class: 'invalid_argument',
  area: 'tls',
  message: (a) => `The node certificate cannot be used: ${a.reason}.`,
  hint: () => 'The certificate must be signed by tls.caFile and match tls.keyFile; `magflock tls status` shows what is configured.',
})

export const TLS_KEY_MISSING = defineError<{ secret: string }>({
  code: 'E_TLS_KEY_MISSING',
  class: 'failed_precondition',
  area: 'tls',
  message: (a) => `The private key ${a.secret} is not in the secret store, but its certificate is on disk.`,
  hint: () => 'Restore the vault from a backup, or start over with `magflock tls rotate --ca` (all nodes then need new certificates).',
})

export const TLS_REQUIRED = defineError<{ addresses: string[]; key: string }>({
  code: 'E_TLS_REQUIRED',
  class: 'failed_precondition',
  area: 'tls',
  message: (a) => `${a.key} names ${a.addresses.join(', ')}, beyond 127.0.0.1, but this flock has no certificates: nothing leaves loopback unencrypted.`,
  hint: () => 'Run `magflock tls init` first (or set tls.caFile/certFile/keyFile), then start again.',
})

export const TLS_BAD_NAME = defineError<{ name: string }>({
  code: 'E_TLS_BAD_NAME',
  class: 'invalid_argument',
  area: 'tls',
  message: (a) => `"${a.name.slice(0, 80)}" is not a valid certificate name.`,
  hint: () => 'Use lowercase letters, digits, "." and "-" (up to 63 characters), starting with a letter or digit.',
})

export const TLS_API_LISTEN_FAILED = defineError<{ listen: string; reason: string }>({
  code: 'E_TLS_API_LISTEN_FAILED',
  class: 'failed_precondition',
  area: 'tls',
  message: (a) => `The control API cannot listen on ${a.listen}: ${a.reason}.`,
  hint: (a) => `Free that port or choose another address with \`magflock config set api.listen ${a.listen.replace(/:\d+$/, ':7544')}\`; the address must be one of this host's.`,
})

export const REMOTE_UNREACHABLE = defineError<{ api: string; reason: string }>({
  code: 'E_REMOTE_UNREACHABLE',
  class: 'unavailable',
  area: 'tls',
  message: (a) => `The kernel at ${a.api} cannot be reached over mutual TLS: ${a.reason}.`,
  hint: () => 'Check the address (api.listen on that node), and that MAGFLOCK_TLS_DIR (or --tls-dir) holds ca.crt, client.crt and client.key issued by `magflock tls client NAME` on that flock.',
})

export const REMOTE_TLS_FILES = defineError<{ dir: string; reason: string }>({
  code: 'E_REMOTE_TLS_FILES',
  class: 'invalid_argument',
  area: 'tls',
  message: (a) => `The client certificate directory ${a.dir} cannot be used: ${a.reason}.`,
  hint: () => 'Issue one with `magflock tls client NAME --out DIR` on a node of the flock and pass that DIR as --tls-dir or MAGFLOCK_TLS_DIR.',
})

export const REMOTE_TOKEN_MISSING = defineError<{ api: string }>({
  code: 'E_REMOTE_TOKEN_MISSING',
  class: 'unauthenticated',
  area: 'tls',
  message: (a) => `A remote kernel (${a.api}) needs a token; there is no local admin token for it.`,
  hint: () => 'Create one on that flock (`magflock token create NAME --role viewer`) and pass it with --token or MAGFLOCK_TOKEN.',
})
