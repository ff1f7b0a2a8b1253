import { z } from 'zod'
import { EVENT_TYPE_CONFLICT } from './errors.js'

/**
 * The event schema registry. Every event type the kernel bus accepts is a zod schema
 * registered here, once, by the module that owns it (areas call `registerEventType` at module
 * load, next to the code that publishes). The bus rejects, and counts, an unknown type or a
 * payload that fails its schema, so subscribers (status views, realtime, webhooks) can rely
 * on the shape.
 */

const STATE = z.enum(['pending', 'starting', 'running', 'restarting', 'stopping', 'stopped', 'failed'])

export const BUILTIN_EVENTS = {
  'kernel.started': z.object({ pid: z.number().int(), version: z.string(), env: z.string() }),
  'kernel.stopping': z.object({ reason: z.string() }),
  'component.state': z.object({ component: z.string(), from: STATE, to: STATE }),
  'component.failed': z.object({ component: z.string(), reason: z.string() }),
  'instance.started': z.object({ instance: z.string(), pid: z.number().int(), adopted: z.boolean() }),
  'instance.crashed': z.object({
    instance: z.string(),
    pid: z.number().int().nullable(),
    signal: z.string().optional(),
    exitCode: z.number().int().optional(),
  }),
  'instance.restarted': z.object({ instance: z.string(), pid: z.number().int(), attempt: z.number().int() }),
  'instance.restart-failed': z.object({ instance: z.string(), attempt: z.number().int(), reason: z.string() }),
  'instance.failed': z.object({ instance: z.string(), reason: z.string() }),
  'config.reloaded': z.object({ applied: z.array(z.string()), restartRequired: z.array(z.string()) }),
  'api.denied': z.object({ route: z.string(), reason: z.string() }),
} as const

export type BuiltinEventType = keyof typeof BUILTIN_EVENTS
export type BuiltinEventPayload<T extends BuiltinEventType> = z.input<(typeof BUILTIN_EVENTS)[T]>

export interface KernelEvent {
  type: string
  /** ISO-8601 time the bus accepted the event. */
  at: string
  payload: unknown
}

const registry = new Map<string, z.ZodType>(Object.entries(BUILTIN_EVENTS))

/**
 * Registers an event type. Registering the same type again with the same schema object is a
 * no-op (modules may be loaded twice in tests); with a different schema it is a bug and
 * throws E_EVENT_TYPE_CONFLICT.
 */
export function registerEventType(type: string, schema: z.ZodType): void {
  const existing = registry.get(type)
  if (existing !== undefined && existing !== schema) throw EVENT_TYPE_CONFLICT({ type })
  registry.set(type, schema)
}

export function eventSchema(type: string): z.ZodType | undefined {
  return registry.get(type)
}

export function eventTypes(): string[] {
  return [...registry.keys()].sort()
}
