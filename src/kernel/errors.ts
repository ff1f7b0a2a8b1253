import { defineError } from '../errors/index.js'

// Errors of the kernel core: component graph, lifecycle, event registry, tokens.

export const COMPONENT_CYCLE = defineError<{ path: string[] }>({
  code: 'E_COMPONENT_CYCLE',
  class: 'failed_precondition',
  area: 'kernel',
  message: (a) => `Kernel components depend on each other in a cycle: ${a.path.join(' → ')}.`,
  hint: () => 'Remove one of the `requires` links in the cycle; a component may only depend on components that start before it.',
})

export const COMPONENT_MISSING_DEP = defineError<{ component: string; dependency: string }>({
  code: 'E_COMPONENT_MISSING_DEP',
  class: 'failed_precondition',
  area: 'kernel',
  message: (a) => `Kernel component "${a.component}" depends on "${a.dependency}", which is not registered.`,
  hint: (a) => `Register the "${a.dependency}" component (or enable it in magflock.yaml), or drop it from "${a.component}".requires.`,
})

export const COMPONENT_DUPLICATE = defineError<{ component: string }>({
  code: 'E_COMPONENT_DUPLICATE',
  class: 'already_exists',
  area: 'kernel',
  message: (a) => `Kernel component "${a.component}" is registered twice.`,
  hint: () => 'Each component name must be unique; check the kernel boot wiring.',
})

export const COMPONENT_START_FAILED = defineError<{ component: string; cause: string; reason: string }>({
  code: 'E_COMPONENT_START_FAILED',
  class: 'unavailable',
  area: 'kernel',
  message: (a) => `Kernel component "${a.component}" failed to start: ${a.cause} (${a.reason}).`,
  hint: () => 'Run `magflock kernel logs` for the full error, fix the cause, then `magflock up` again.',
})

export const COMPONENT_NOT_FOUND = defineError<{ component: string }>({
  code: 'E_COMPONENT_NOT_FOUND',
  class: 'not_found',
  area: 'kernel',
  message: (a) => `There is no kernel component named "${a.component}".`,
  hint: () => 'Run `magflock status` to list the components.',
})

export const EVENT_TYPE_CONFLICT = defineError<{ type: string }>({
  code: 'E_EVENT_TYPE_CONFLICT',
  class: 'internal',
  area: 'kernel',
  message: (a) => `Event type "${a.type}" is registered twice with different schemas.`,
  hint: () => 'This is a bug in MagFlock: each event type is registered once, by the module that owns it.',
})

export const TOKEN_NOT_FOUND = defineError<{ id: string }>({
  code: 'E_TOKEN_NOT_FOUND',
  class: 'not_found',
  area: 'kernel',
  message: (a) => `There is no API token with id "${a.id}".`,
  hint: () => 'Run `magflock token list` to see the token ids.',
})

export const TOKEN_STORE_MISMATCH = defineError<{ tokenFile: string; store: string }>({
  code: 'E_TOKEN_STORE_MISMATCH',
  class: 'failed_precondition',
  area: 'kernel',
  message: (a) => `The admin token in ${a.tokenFile} is not known to the token store ${a.store}.`,
  hint: (a) =>
    `Restore ${a.store} from a backup, or move ${a.tokenFile} aside so the kernel creates a new admin token on its next start.`,
})

export const AUDIT_UNAVAILABLE = defineError<{ action: string; reason: string }>({
  code: 'E_AUDIT_UNAVAILABLE',
  class: 'unavailable',
  area: 'audit',
  message: (a) => `Refused ${a.action}: its audit record could not be made durable (${a.reason}). Nothing was changed.`,
  hint: () =>
    'Mutating calls are refused until the audit log can be written again. Check <state>/audit/ (disk space, permissions, `lsattr` for the immutable flag, a file deleted or replaced underneath the kernel) and kernel.log; restore the files from a backup if they were replaced, then restart the kernel (`magflock kernel stop && magflock up`). `magflock audit verify` checks the chain; docs/operations.md, "Audit guarantees", explains the choices.',
})

export const KERNEL_START_IN_PROGRESS = defineError<{ pid: number; stateDir: string; seconds: number }>({
  code: 'E_KERNEL_START_IN_PROGRESS',
  class: 'unavailable',
  area: 'kernel',
  message: (a) => `Another \`magflock up\` (pid ${a.pid}) is starting the kernel for ${a.stateDir}; it was still starting after ${a.seconds} s.`,
  hint: () => 'Wait for it to finish, then run `magflock status`. If that process hangs, stop it; the next `magflock up` takes over.',
})
