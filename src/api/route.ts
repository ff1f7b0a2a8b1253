import { z } from 'zod'

/**
 * One control-API route, declared once and shared by the kernel's server (which validates
 * the request body and checks the caller's role) and the typed client (which validates the
 * response). Streaming routes answer with NDJSON: zero or more `progress` events, then one
 * `result` or `error` event.
 */
export const ROLES = ['admin', 'operator', 'viewer', 'ci'] as const
export type Role = (typeof ROLES)[number]

export interface RouteDef<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  id: string
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  roles: readonly Role[]
  /** Mutating calls are appended to the audit log, successful or not. */
  mutating: boolean
  streaming?: boolean
  /**
   * A long-lived NDJSON stream the handler writes itself through `ctx.stream` (no progress/
   * result protocol), e.g. GET /v1/events.
   */
  raw?: boolean
  /** Extension tokens reach this route and the handler checks their grants (events, hooks). */
  extensions?: boolean
  input: I
  output: O
}

export function defineRoute<I extends z.ZodType, O extends z.ZodType>(r: RouteDef<I, O>): RouteDef<I, O> {
  return r
}

/** A route's response as the client returns it: commands derive their `--json` result type from it. */
export type RouteOutput<R extends RouteDef> = z.output<R['output']>

export const ALL_ROLES: readonly Role[] = ROLES
export const OPERATORS: readonly Role[] = ['admin', 'operator']
export const ADMIN_ONLY: readonly Role[] = ['admin']

export const ProgressEvent = z.object({
  type: z.literal('progress'),
  phase: z.string(),
  message: z.string(),
  /** 0..1 when known. */
  fraction: z.number().min(0).max(1).optional(),
  bytesDone: z.number().optional(),
  bytesTotal: z.number().optional(),
  current: z.number().optional(),
  total: z.number().optional(),
})
export type ProgressEvent = z.infer<typeof ProgressEvent>

export const WireErrorSchema = z.object({
  code: z.string(),
  class: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
})

export const API_HOST = 'magflock'
export const API_VERSION = 'v1'
