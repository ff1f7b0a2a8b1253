import { z } from 'zod'
import type { RouteMeta } from './route-meta.js'

export { ADMIN_ONLY, ALL_ROLES, API_HOST, API_VERSION, OPERATORS, ROLES, type LazyRoute, type Role, type RouteMeta } from './route-meta.js'

/**
 * One control-API route, declared once and shared by the kernel's server (which validates
 * the request body, checks the caller's role and the handler's response) and the typed client
 * (which checks the response again when it has the schemas: see LazyRoute in route-meta.ts
 * for the calls that do without). Streaming routes answer with NDJSON: zero or more `progress` events, then one
 * `result` or `error` event.
 */
export interface RouteDef<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> extends RouteMeta {
  input: I
  output: O
}

export function defineRoute<I extends z.ZodType, O extends z.ZodType>(r: RouteDef<I, O>): RouteDef<I, O> {
  return r
}

/** A route's response as the client returns it: commands derive their `--json` result type from it. */
export type RouteOutput<R extends RouteDef> = z.output<R['output']>

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
