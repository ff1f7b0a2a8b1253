import pino from 'pino'
import type { EventPublisher } from '../../../src/kernel/component.js'
import { instanceEventSchemas } from '../../../src/postgres/supervisor.js'

/** Records published events, validating each against the supervisor's own schemas. */
export function recordingEvents(): EventPublisher & { list: Array<{ type: string; payload: Record<string, unknown> }> } {
  const list: Array<{ type: string; payload: Record<string, unknown> }> = []
  return {
    list,
    publish(type, payload) {
      const schema = instanceEventSchemas[type as keyof typeof instanceEventSchemas]
      if (!schema) throw new Error(`unknown event type ${type}`)
      list.push({ type, payload: schema.parse(payload) as Record<string, unknown> })
      return true
    },
  }
}

export const silentLog = pino({ level: 'silent' })

/** Polls until `cond` holds (bounded by the test timeout; this is waiting, not timing). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 45_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
