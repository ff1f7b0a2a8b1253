import { defineError } from '../errors/index.js'

/** Errors of the extension plane (`magflock ext …` and the broker). Exit codes: docs/operations.md. */

export const EXT_NOT_FOUND = defineError<{ name: string }>({
  code: 'E_EXT_NOT_FOUND',
  class: 'not_found',
  area: 'extensions',
  message: (a) => `There is no extension named "${a.name}".`,
  hint: () => 'Run `magflock ext list` to see the installed extensions.',
})

export const EXT_EXISTS = defineError<{ name: string; version: string }>({
  code: 'E_EXT_EXISTS',
  class: 'already_exists',
  area: 'extensions',
  message: (a) => `Extension "${a.name}" is already installed (version ${a.version}).`,
  hint: (a) => `Nothing was changed. Remove it first with \`magflock ext remove ${a.name}\` to install another copy.`,
})

export const EXT_MANIFEST_INVALID = defineError<{ source: string; reason: string }>({
  code: 'E_EXT_MANIFEST_INVALID',
  class: 'invalid_argument',
  area: 'extensions',
  message: (a) => `The extension at ${a.source} has no valid magflock-extension.json: ${a.reason}.`,
  hint: () => 'See docs/extensions.md, "Manifest reference", or start from templates/extension/.',
})

export const EXT_SOURCE_INVALID = defineError<{ source: string; reason: string }>({
  code: 'E_EXT_SOURCE_INVALID',
  class: 'invalid_argument',
  area: 'extensions',
  message: (a) => `Cannot install from "${a.source}": ${a.reason}.`,
  hint: () => 'Give an absolute path to a directory or a .tgz made by `npm pack`, or an npm package name.',
})

export const EXT_CAPABILITY_INVALID = defineError<{ capability: string; reason: string }>({
  code: 'E_EXT_CAPABILITY_INVALID',
  class: 'invalid_argument',
  area: 'extensions',
  message: (a) => `"${a.capability}" is not a grantable capability: ${a.reason}.`,
  hint: () => 'Capabilities: events:subscribe:<pattern>, api:call:<routeId>, db:connect:<database>:ro|rw, config:read, state:dir, hooks:<point>:observe|veto (docs/extensions.md).',
})

export const EXT_CAPABILITY_NOT_REQUESTED = defineError<{ name: string; capability: string }>({
  code: 'E_EXT_CAPABILITY_NOT_REQUESTED',
  class: 'failed_precondition',
  area: 'extensions',
  message: (a) => `Extension "${a.name}" does not request "${a.capability}" in its manifest; nothing was granted.`,
  hint: (a) => `\`magflock ext list\` shows what ${a.name} requests; a new capability needs a new version of the extension.`,
})

export const EXT_GRANT_MISSING = defineError<{ name: string; capability: string }>({
  code: 'E_EXT_GRANT_MISSING',
  class: 'not_found',
  area: 'extensions',
  message: (a) => `Extension "${a.name}" has no grant "${a.capability}".`,
  hint: (a) => `\`magflock ext list\` shows the grants of ${a.name}.`,
})

export const EXT_DENIED = defineError<{ name: string; capability: string; action: string }>({
  code: 'E_EXT_DENIED',
  class: 'permission_denied',
  area: 'extensions',
  message: (a) => `Extension "${a.name}" may not ${a.action}: it has no grant "${a.capability}". The refusal was audited.`,
  hint: (a) => `An admin can grant it with \`magflock ext grant ${a.name} ${a.capability}\` if the manifest requests it.`,
})

export const EXT_ROUTE_NEVER_GRANTABLE = defineError<{ name: string; route: string }>({
  code: 'E_EXT_ROUTE_FORBIDDEN',
  class: 'permission_denied',
  area: 'extensions',
  message: (a) => `Extension "${a.name}" may not call ${a.route}: secrets, tokens, code execution and extension management are never reachable by an extension. The refusal was audited.`,
  hint: () => 'Extensions work through the routes listed in docs/extensions.md, "Capabilities".',
})

export const EXT_RATE_LIMITED = defineError<{ name: string; perSecond: number }>({
  code: 'E_EXT_RATE_LIMITED',
  class: 'unavailable',
  area: 'extensions',
  message: (a) => `Extension "${a.name}" sent more than ${a.perSecond} API calls per second; this call was refused.`,
  hint: () => 'Retry after a short pause (back off); the limit protects the kernel from a flooding extension.',
})

export const EXT_ISOLATION_UNAVAILABLE = defineError<{ reason: string }>({
  code: 'E_EXT_ISOLATION_UNAVAILABLE',
  class: 'failed_precondition',
  area: 'extensions',
  message: (a) => `Extensions cannot be run isolated here: ${a.reason}.`,
  hint: () => 'The kernel must run as root to give each extension its own OS user (run it as a service: `magflock service install`).',
})

export const EXT_NAME_INVALID = defineError<{ name: string }>({
  code: 'E_EXT_NAME_INVALID',
  class: 'invalid_argument',
  area: 'extensions',
  message: (a) => `"${a.name.slice(0, 80)}" is not a valid extension name.`,
  hint: () => 'Use a lowercase letter, then lowercase letters, digits and "-", at most 24 characters.',
})
