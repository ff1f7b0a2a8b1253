/**
 * MagFlock's error model (after containerd's handful of meaningful classes).
 *
 * Every failure an operator can meet is a MagflockError with a stable `code` (E_…), a class
 * that decides the CLI exit code, a message that states what happened and a hint that names
 * the command or config key that gets them out. The control API sends the same three fields
 * on the wire, so the CLI renders a kernel-side error exactly like a local one.
 *
 * Messages and hints must never carry secret values: build them from names, not contents.
 */

export type ErrorClass =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'conflict'
  | 'unavailable'
  | 'unauthenticated'
  | 'permission_denied'
  | 'deadline_exceeded'
  | 'data_loss'
  | 'aborted'
  | 'internal'

/** Documented in docs/operations.md; CI scripts depend on them, so never renumber. */
export const EXIT_CODES: Record<ErrorClass, number> = {
  internal: 1,
  invalid_argument: 2,
  not_found: 3,
  already_exists: 4,
  failed_precondition: 5,
  conflict: 6,
  unavailable: 7,
  unauthenticated: 8,
  permission_denied: 9,
  deadline_exceeded: 10,
  data_loss: 11,
  aborted: 12,
}

/** HTTP status the control API uses for each class. */
export const HTTP_STATUS: Record<ErrorClass, number> = {
  internal: 500,
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 412,
  conflict: 409,
  unavailable: 503,
  unauthenticated: 401,
  permission_denied: 403,
  deadline_exceeded: 504,
  data_loss: 422,
  aborted: 409,
}

export interface WireError {
  code: string
  class: ErrorClass
  message: string
  hint?: string
  details?: Record<string, unknown>
}

export class MagflockError extends Error {
  readonly code: string
  readonly errorClass: ErrorClass
  readonly hint: string | undefined
  readonly details: Record<string, unknown> | undefined

  constructor(w: WireError, options?: { cause?: unknown }) {
    super(w.message, options)
    this.name = 'MagflockError'
    this.code = w.code
    this.errorClass = w.class
    this.hint = w.hint
    this.details = w.details
  }

  get exitCode(): number {
    return EXIT_CODES[this.errorClass]
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.errorClass]
  }

  toWire(): WireError {
    const w: WireError = { code: this.code, class: this.errorClass, message: this.message }
    if (this.hint !== undefined) w.hint = this.hint
    if (this.details !== undefined) w.details = this.details
    return w
  }

  static fromWire(w: WireError): MagflockError {
    return new MagflockError(w)
  }
}

export interface ErrorDefinition<A> {
  (args: A, options?: { cause?: unknown; details?: Record<string, unknown> }): MagflockError
  readonly code: string
  readonly errorClass: ErrorClass
  is(err: unknown): err is MagflockError
}

const registry = new Map<string, { code: string; errorClass: ErrorClass; area: string }>()

/** All defined errors, for docs/errors.md and for tests that check codes are unique. */
export function errorCatalog(): Array<{ code: string; errorClass: ErrorClass; area: string }> {
  return [...registry.values()].sort((a, b) => a.code.localeCompare(b.code))
}

export function defineError<A = void>(def: {
  code: `E_${string}`
  class: ErrorClass
  area: string
  message: (a: A) => string
  hint?: (a: A) => string
}): ErrorDefinition<A> {
  if (registry.has(def.code)) throw new Error(`error code ${def.code} defined twice`)
  registry.set(def.code, { code: def.code, errorClass: def.class, area: def.area })
  const make = (args: A, options?: { cause?: unknown; details?: Record<string, unknown> }) => {
    const w: WireError = { code: def.code, class: def.class, message: def.message(args) }
    const hint = def.hint?.(args)
    if (hint !== undefined) w.hint = hint
    if (options?.details !== undefined) w.details = options.details
    return new MagflockError(w, { cause: options?.cause })
  }
  return Object.assign(make, {
    code: def.code,
    errorClass: def.class,
    is: (err: unknown): err is MagflockError => err instanceof MagflockError && err.code === def.code,
  })
}

export function isMagflockError(err: unknown): err is MagflockError {
  return err instanceof MagflockError
}

