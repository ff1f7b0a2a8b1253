import { z } from 'zod'
import { registerEventType } from '../kernel/events.js'

/** Events the pooler publishes on the kernel bus. */
export const poolerEventSchemas = {
  'pooler.started': z.object({ pid: z.number().int(), port: z.number().int(), adopted: z.boolean(), primary: z.string() }),
  'pooler.repointed': z.object({ from: z.string(), to: z.string(), port: z.number().int(), planned: z.boolean() }),
  'pooler.down': z.object({ pid: z.number().int(), reason: z.string() }),
} as const satisfies Record<string, z.ZodType>

for (const [type, schema] of Object.entries(poolerEventSchemas)) registerEventType(type, schema)
