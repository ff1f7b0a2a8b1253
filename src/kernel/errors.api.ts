import { defineError } from '../errors/index.js'

export const UNAUTHENTICATED = defineError<{ reason: string }>({
  code: 'E_UNAUTHENTICATED',
  class: 'unauthenticated',
  area: 'api',
  message: (a) => `Not authenticated: ${a.reason}.`,
  hint: () => 'Send `Authorization: Bearer <token>`; the admin token is in <state>/admin.token, others come from `magflock token create`.',
})

export const FORBIDDEN = defineError<{ role: string; route: string; allowed: readonly string[] }>({
  code: 'E_FORBIDDEN',
  class: 'permission_denied',
  area: 'api',
  message: (a) => `A ${a.role} token may not call ${a.route} (allowed: ${a.allowed.join(', ')}).`,
  // The least role that may call it (roles are listed from the most to the least privileged);
  // a route no token role may call is an extension's (through its grants).
  hint: (a) => {
    const least = a.allowed.filter((r) => r !== 'extension').at(-1)
    return least
      ? `Ask an admin for a token with a role that may: \`magflock token create --role ${least} --name NAME\`.`
      : 'No token role may call it: only an extension, through its own token and grants (`magflock ext grant`).'
  },
})

export const BAD_HOST = defineError<{ host: string; header?: string }>({
  code: 'E_BAD_ORIGIN',
  class: 'permission_denied',
  area: 'api',
  message: (a) =>
    `Refused a request with ${a.header ? `${a.header} header` : 'Host/Origin'} "${a.host}": the control API only answers local clients, never a browser.`,
  hint: () => 'Use the MagFlock CLI or `curl --unix-socket <socket> http://magflock/v1/...`.',
})

export const ROUTE_NOT_FOUND = defineError<{ method: string; path: string }>({
  code: 'E_ROUTE_NOT_FOUND',
  class: 'not_found',
  area: 'api',
  message: (a) => `No route ${a.method} ${a.path}.`,
  hint: () => 'Routes are versioned under /v1; see docs/architecture.md for the list. The CLI may be newer than the kernel: restart it.',
})

export const BUSY = defineError<{ resource: string; holder: string; operation: string }>({
  code: 'E_BUSY',
  class: 'conflict',
  area: 'kernel',
  message: (a) => `Cannot ${a.operation} ${a.resource}: ${a.holder} is in progress.`,
  hint: () => 'Wait for it to finish (`magflock status`), then retry.',
})

export const NO_PRIMARY = defineError<void>({
  code: 'E_NO_PRIMARY',
  class: 'unavailable',
  area: 'kernel',
  message: () => 'The flock has no running primary right now.',
  hint: () => 'Check `magflock status`; a failover may be in progress, or run `magflock up`.',
})

export const KERNEL_ALREADY_RUNNING = defineError<{ pid: number; stateDir: string }>({
  code: 'E_KERNEL_ALREADY_RUNNING',
  class: 'already_exists',
  area: 'kernel',
  message: (a) => `A kernel (pid ${a.pid}) is already running for ${a.stateDir}.`,
  hint: () => 'Use it (`magflock status`), or stop it first with `magflock kernel stop`.',
})

export const KERNEL_START_FAILED = defineError<{ reason: string; log: string }>({
  code: 'E_KERNEL_START_FAILED',
  class: 'unavailable',
  area: 'kernel',
  message: (a) => `The kernel did not start: ${a.reason}.`,
  hint: (a) => `See ${a.log} (\`magflock kernel logs\`); \`magflock doctor\` checks the machine.`,
})

export const SOCKET_IN_USE = defineError<{ socket: string }>({
  code: 'E_SOCKET_IN_USE',
  class: 'already_exists',
  area: 'kernel',
  message: (a) => `Another process answers on ${a.socket}.`,
  hint: () => 'A kernel is already running for this state directory: `magflock status`, or `magflock kernel stop` first.',
})

export const INSTANCE_UNKNOWN = defineError<{ name: string }>({
  code: 'E_INSTANCE_UNKNOWN',
  class: 'not_found',
  area: 'kernel',
  message: (a) => `The flock has no instance named "${a.name}".`,
  hint: () => 'Run `magflock status` to see the instances and their roles.',
})

export const INSTANCE_NOT_STANDALONE = defineError<{ name: string; role: string }>({
  code: 'E_INSTANCE_NOT_STANDALONE',
  class: 'failed_precondition',
  area: 'kernel',
  message: (a) => `Instance "${a.name}" is the flock's ${a.role}; only standalone instances (restored copies) are removed with \`instance remove\`.`,
  hint: (a) => (a.role === 'primary' ? 'The primary is never removed.' : `Use \`magflock replica remove ${a.name}\` for a replica.`),
})
