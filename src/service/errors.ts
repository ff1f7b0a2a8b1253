import { defineError } from '../errors/index.js'

/** Errors of `magflock service …` (the systemd unit that keeps the kernel running). */

export const SERVICE_NAME_INVALID = defineError<{ name: string }>({
  code: 'E_SERVICE_NAME_INVALID',
  class: 'invalid_argument',
  area: 'service',
  message: (a) => `"${a.name}" is not a valid service name (letters, digits, "-", "_" and "." up to 64, starting with a letter).`,
  hint: () => 'Pass e.g. `--name magflock-prod`; the unit file is then magflock-prod.service.',
})

export const SERVICE_VALUE_INVALID = defineError<{ what: string }>({
  code: 'E_SERVICE_VALUE_INVALID',
  class: 'invalid_argument',
  area: 'service',
  message: (a) => `The ${a.what} holds a newline or another character that a systemd unit or environment file cannot carry.`,
  hint: (a) => `Use a ${a.what} without such characters (paths: \`--state-dir\`, or install from another project directory).`,
})

export const SERVICE_UNIT_FOREIGN = defineError<{ file: string }>({
  code: 'E_SERVICE_UNIT_FOREIGN',
  class: 'already_exists',
  area: 'service',
  message: (a) => `${a.file} exists and was not written by magflock service install.`,
  hint: () => 'Choose another unit name with `--name`, or move that file away if it is no longer used.',
})

export const SERVICE_WRITE_DENIED = defineError<{ file: string }>({
  code: 'E_SERVICE_WRITE_DENIED',
  class: 'permission_denied',
  area: 'service',
  message: (a) => `Not allowed to write ${a.file}.`,
  hint: () => 'Installing a system unit needs root: run it with sudo, or pass `--unit-dir DIR` to write the unit somewhere you may.',
})
