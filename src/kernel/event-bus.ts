import type { Logger } from 'pino'
import type { KernelMetrics } from '../telemetry/metrics.js'
import { eventSchema, type KernelEvent } from './events.js'
import type { KernelEvents } from './services.js'

export type { KernelEvent } from './events.js'

/**
 * The kernel's in-process event bus.
 *
 * Contract: `publish` validates the payload against the type's registered schema and returns
 * false — never throws — for an unknown type or an invalid payload (counted as
 * magflock_events_total{valid="false"} and logged without the payload, which may hold
 * anything). A valid event is counted, kept in a ring buffer for `recent()`, and delivered to
 * every subscriber synchronously, in subscription order, before `publish` returns. A
 * subscriber that throws is logged and does not stop delivery to the others.
 */
export class EventBus implements KernelEvents {
  private readonly metrics: KernelMetrics | undefined
  private readonly log: Logger | undefined
  private readonly capacity: number
  private readonly ring: KernelEvent[] = []
  private next = 0
  private readonly subscribers = new Set<(ev: KernelEvent) => void>()
  private readonly now: () => Date

  constructor(opts: { metrics?: KernelMetrics; log?: Logger; capacity?: number; now?: () => Date } = {}) {
    this.metrics = opts.metrics
    this.log = opts.log
    this.capacity = Math.max(1, opts.capacity ?? 1000)
    this.now = opts.now ?? (() => new Date())
  }

  publish(type: string, payload: unknown): boolean {
    const schema = eventSchema(type)
    if (schema === undefined) return this.reject(type, 'unknown event type')
    const parsed = schema.safeParse(payload)
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`).join('; ')
      return this.reject(type, `invalid payload: ${issues}`)
    }
    const ev: KernelEvent = { type, at: this.now().toISOString(), payload: parsed.data }
    this.metrics?.eventCounted(type, true)
    if (this.ring.length < this.capacity) this.ring.push(ev)
    else this.ring[this.next] = ev
    this.next = (this.next + 1) % this.capacity
    for (const fn of [...this.subscribers]) {
      try {
        fn(ev)
      } catch (err) {
        this.log?.error({ err, eventType: type }, 'event subscriber threw; continuing with the others')
      }
    }
    return true
  }

  subscribe(fn: (ev: KernelEvent) => void): () => void {
    // Wrap so the same function subscribed twice gets two deliveries and two unsubscribes.
    const sub = (ev: KernelEvent) => fn(ev)
    this.subscribers.add(sub)
    return () => {
      this.subscribers.delete(sub)
    }
  }

  /** The last `n` accepted events, oldest first. */
  recent(n = this.capacity): KernelEvent[] {
    const ordered = this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)]
    return n >= ordered.length ? ordered : ordered.slice(ordered.length - Math.max(0, n))
  }

  private reject(type: string, reason: string): false {
    // The type label is caller-provided; bound it so a misbehaving caller cannot mint
    // unbounded label values.
    const label = /^[a-z][a-z0-9_.-]{0,63}$/i.test(type) ? type : 'invalid_type_name'
    this.metrics?.eventCounted(label, false)
    this.log?.warn({ eventType: label, reason }, 'event rejected')
    return false
  }
}
