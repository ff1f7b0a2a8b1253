import { z } from 'zod'
import { defineRoute } from './route.js'

/** Events out and hooks in: the kernel's event stream and the extension hook protocol (docs/extensions.md). */

/** One event type, `*`, or a prefix ending in `*` (e.g. `replication.*`). */
const PATTERN = /^(\*|[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*(\.?\*)?)$/

export const EventTypeFilter = z
  .string()
  .min(1)
  .max(1000)
  .refine((s) => s.split(',').every((p) => PATTERN.test(p.trim())), 'comma-separated event types or prefixes ending in *')

/** One line of GET /v1/events. */
export const EventLine = z.object({
  seq: z.number().int(),
  id: z.string(),
  type: z.string(),
  time: z.string(),
  data: z.unknown(),
})
export type EventLine = z.infer<typeof EventLine>

/**
 * GET /v1/events: NDJSON, one EventLine per line, in seq order. Control lines have no seq:
 *   {"type":"stream.missed","data":{"after":n,"oldestSeq":m}}   the cursor is older than the journal keeps
 *   {"type":"stream.closed","data":{"reason":"…","resumeAfter":n}} the kernel ended the stream
 *     (slow reader, kernel stopping); resume with after=resumeAfter.
 * Without follow the stream ends after the newest event. Without after: everything the
 * journal keeps, or with follow only new events.
 */
export const eventsStream = defineRoute({
  id: 'events.stream',
  method: 'GET',
  path: '/v1/events',
  roles: ['admin', 'operator', 'viewer'],
  mutating: false,
  raw: true,
  extensions: true,
  input: z
    .object({
      after: z.string().regex(/^\d{1,15}$/, 'a seq number').transform(Number).optional(),
      type: EventTypeFilter.optional(),
      follow: z.enum(['0', '1']).optional(),
    })
    .strict(),
  output: z.object({}),
})

export const HOOK_POINTS = ['backup.before', 'backup.after', 'replication.role_changed', 'failover.after', 'migrate.before'] as const
export type HookPoint = (typeof HOOK_POINTS)[number]
/** Points the failover path notifies without waiting: a veto is meaningless there. */
export const OBSERVE_ONLY_POINTS: readonly HookPoint[] = ['replication.role_changed', 'failover.after']

/** An extension registers for a hook point (needs the grant `hooks:<point>:<effect>`). */
export const hookRegister = defineRoute({
  id: 'hooks.register',
  method: 'POST',
  path: '/v1/hooks',
  roles: [],
  mutating: true,
  extensions: true,
  input: z
    .object({
      point: z.enum(HOOK_POINTS),
      effect: z.enum(['observe', 'veto']),
      timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
    })
    .strict(),
  output: z.object({ hookId: z.string(), point: z.enum(HOOK_POINTS), effect: z.enum(['observe', 'veto']), timeoutMs: z.number() }),
})

/** The extension's answer to a `hook.invoke` event it received on its stream. */
export const hookAnswer = defineRoute({
  id: 'hooks.answer',
  method: 'POST',
  path: '/v1/hooks/invocations/:invocationId',
  roles: [],
  mutating: true,
  extensions: true,
  input: z
    .object({
      invocationId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
      verdict: z.enum(['allow', 'veto']),
      reason: z.string().max(500).default(''),
    })
    .strict(),
  output: z.object({ invocationId: z.string(), accepted: z.boolean() }),
})
