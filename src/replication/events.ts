import { z } from 'zod'
import { registerEventType } from '../kernel/events.js'

/**
 * The events the replication area publishes on the kernel bus. The kernel registers these
 * schemas (type → schema) at boot so that a bad payload is rejected and counted.
 */
export const ReplicaAdded = z.object({ name: z.string(), port: z.number(), sync: z.boolean(), slot: z.string(), durationMs: z.number() })
export const ReplicaRemoved = z.object({ name: z.string(), slotDropped: z.boolean() })
export const SwitchoverCompleted = z.object({
  from: z.string(),
  to: z.string(),
  writeOutageMs: z.number(),
  durationMs: z.number(),
  timeline: z.number().nullable(),
})
export const FailoverStarted = z.object({ from: z.string(), to: z.string(), reason: z.string(), automatic: z.boolean() })
export const FailoverCompleted = z.object({
  from: z.string(),
  to: z.string(),
  reason: z.string(),
  automatic: z.boolean(),
  durationMs: z.number(),
  timeline: z.number().nullable(),
  repointed: z.array(z.string()),
})
export const FailoverFailed = z.object({ from: z.string(), to: z.string(), error: z.string() })
export const InstanceFenced = z.object({ name: z.string(), reason: z.string() })
export const InstanceRejoined = z.object({ name: z.string(), primary: z.string(), method: z.enum(['none', 'rewind', 'reclone']), durationMs: z.number() })
export const MonitorDecision = z.object({ action: z.string(), sentence: z.string() })

export const replicationEventSchemas = {
  'replica.added': ReplicaAdded,
  'replica.removed': ReplicaRemoved,
  'switchover.completed': SwitchoverCompleted,
  'failover.started': FailoverStarted,
  'failover.completed': FailoverCompleted,
  'failover.failed': FailoverFailed,
  'instance.fenced': InstanceFenced,
  'instance.rejoined': InstanceRejoined,
  'failover.decision': MonitorDecision,
} as const satisfies Record<string, z.ZodType>

export type ReplicationEventType = keyof typeof replicationEventSchemas

for (const [type, schema] of Object.entries(replicationEventSchemas)) registerEventType(type, schema)
