import { randomUUID } from 'node:crypto'

/**
 * Presence for one channel topic, in Phoenix.Presence's wire shape:
 * state `{ key: { metas: [{ phx_ref, ...payload }] } }`, diffs `{ joins, leaves }` of the same
 * shape. Each tracked entry belongs to one channel member (a socket's join of the topic);
 * a member tracks at most one key, as in Supabase Realtime.
 */
export interface Meta extends Record<string, unknown> {
  phx_ref: string
}
export type PresenceMap = Record<string, { metas: Meta[] }>

let refCounter = 0
function nextRef(): string {
  refCounter = (refCounter + 1) % Number.MAX_SAFE_INTEGER
  return `F${Date.now().toString(36)}${refCounter.toString(36)}`
}

export class TopicPresence {
  /** member id → its tracked entry */
  private readonly entries = new Map<string, { key: string; meta: Meta }>()

  get size(): number {
    return this.entries.size
  }

  state(): PresenceMap {
    const out: PresenceMap = {}
    for (const { key, meta } of this.entries.values()) (out[key] ??= { metas: [] }).metas.push(meta)
    return out
  }

  /** Track or update; returns the diff to broadcast (undefined when nothing changed). */
  track(memberId: string, key: string, payload: Record<string, unknown>): { joins: PresenceMap; leaves: PresenceMap } | undefined {
    const prev = this.entries.get(memberId)
    if (prev && prev.key === key && JSON.stringify(strip(prev.meta)) === JSON.stringify(payload)) return undefined
    const meta: Meta = { ...payload, phx_ref: nextRef() }
    if (prev) meta.phx_ref_prev = prev.meta.phx_ref
    this.entries.set(memberId, { key, meta })
    const leaves: PresenceMap = prev ? { [prev.key]: { metas: [prev.meta] } } : {}
    return { joins: { [key]: { metas: [meta] } }, leaves }
  }

  untrack(memberId: string): { joins: PresenceMap; leaves: PresenceMap } | undefined {
    const prev = this.entries.get(memberId)
    if (!prev) return undefined
    this.entries.delete(memberId)
    return { joins: {}, leaves: { [prev.key]: { metas: [prev.meta] } } }
  }
}

function strip(meta: Meta): Record<string, unknown> {
  const { phx_ref: _r, phx_ref_prev: _p, ...rest } = meta
  return rest
}

export function defaultPresenceKey(): string {
  return randomUUID()
}
