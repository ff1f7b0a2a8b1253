import { z } from 'zod'
import { HOOK_POINTS } from '../api/events.js'

/** Events of the hooks area, registered with the kernel's schema registry at boot. */
const Point = z.enum(HOOK_POINTS)
/** What a hook is told: names, ids and numbers only, never a secret value. */
const Context = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.string())]))

export const hookEventSchemas = {
  /** Delivered on the registering extension's /v1/events stream (and visible to operators). */
  'hook.invoke': z.object({
    hookId: z.string(),
    invocationId: z.string(),
    point: Point,
    extension: z.string(),
    effect: z.enum(['observe', 'veto']),
    timeoutMs: z.number().int(),
    context: Context,
  }),
  'hook.timeout': z.object({ hookId: z.string(), invocationId: z.string(), point: Point, extension: z.string(), timeoutMs: z.number().int() }),
  'hook.vetoed': z.object({ hookId: z.string(), invocationId: z.string(), point: Point, extension: z.string(), reason: z.string() }),
} as const
