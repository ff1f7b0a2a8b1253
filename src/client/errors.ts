import { defineError } from '../errors/index.js'

export const KERNEL_NOT_RUNNING = defineError<{ stateDir: string; reason: string }>({
  code: 'E_KERNEL_NOT_RUNNING',
  class: 'unavailable',
  area: 'client',
  message: (a) => `The MagFlock kernel for ${a.stateDir} is not running (${a.reason}).`,
  hint: () => 'Start it with `magflock up` (or `magflock kernel start`); `magflock doctor` checks the machine.',
})

export const TOKEN_MISSING = defineError<{ file: string }>({
  code: 'E_TOKEN_MISSING',
  class: 'unauthenticated',
  area: 'client',
  message: (a) => `No control API token: ${a.file} does not exist and neither --token nor MAGFLOCK_TOKEN is set.`,
  hint: () => 'Run `magflock up` once to create the admin token, or ask an admin for one (`magflock token create`).',
})

export const BAD_RESPONSE = defineError<{ route: string; reason: string }>({
  code: 'E_BAD_RESPONSE',
  class: 'internal',
  area: 'client',
  message: (a) => `The kernel answered ${a.route} with something this CLI does not understand: ${a.reason}.`,
  hint: () => 'The CLI and the running kernel may be different versions: restart the kernel (`magflock kernel stop && magflock up`).',
})

export const KERNEL_LOST = defineError<{ stateDir: string; route: string; reason: string }>({
  code: 'E_KERNEL_LOST',
  class: 'unavailable',
  area: 'client',
  message: (a) => `The MagFlock kernel for ${a.stateDir} went away in the middle of ${a.route} (${a.reason}).`,
  hint: () =>
    'The kernel crashed or was killed while it worked on this command, which may or may not have taken effect. `magflock up` starts it again; then check with `magflock status`. kernel.log says why it died, and the audit log has the call\'s intent record (result "intent" with no outcome after it).',
})

export const STATE_ACCESS = defineError<{ path: string; op: string; reason: string }>({
  code: 'E_STATE_ACCESS',
  class: 'permission_denied',
  area: 'client',
  message: (a) => `Cannot ${a.op} ${a.path}: ${a.reason}.`,
  hint: () =>
    'Run magflock as the user that owns the state directory (usually the one that ran `magflock up`), or pick another one with --state-dir / MAGFLOCK_STATE_DIR. `magflock doctor` checks the machine.',
})

const FS_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a path component is not a directory',
  EROFS: 'the file system is read-only',
  EISDIR: 'it is a directory',
}

/**
 * A file-system error on the state directory (unreadable, not a directory, read-only) as a
 * clear E_STATE_ACCESS instead of an internal error; undefined for anything else.
 */
export function stateAccessError(err: unknown): ReturnType<typeof STATE_ACCESS> | undefined {
  const e = err as NodeJS.ErrnoException | undefined
  if (e === undefined || e === null || typeof e !== 'object' || typeof e.code !== 'string') return undefined
  const reason = FS_REASONS[e.code]
  if (reason === undefined || typeof e.path !== 'string') return undefined
  const op = e.syscall === 'open' || e.syscall === 'read' || e.syscall === 'scandir' || e.syscall === 'stat' || e.syscall === 'lstat' ? 'read' : 'access'
  return STATE_ACCESS({ path: e.path, op: e.syscall === 'mkdir' || e.syscall === 'write' || e.syscall === 'rename' ? 'write' : op, reason }, { cause: err })
}
