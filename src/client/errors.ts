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
