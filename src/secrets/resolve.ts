import type { MagflockConfig } from '../config/schema.js'
import type { SecretStore } from './secret-store.js'
import { SECRET_NOT_FOUND } from './errors.js'

/** `secret:NAME` anywhere in the config refers to a vault entry. */
export const SECRET_REF = /^secret:([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/

export function secretRefName(value: unknown): string | undefined {
  return typeof value === 'string' ? SECRET_REF.exec(value)?.[1] : undefined
}

/** Every secret name the config refers to (for doctor / validate: "refers to missing secret X"). */
export function secretRefs(config: unknown): string[] {
  const out = new Set<string>()
  const walk = (v: unknown) => {
    const n = secretRefName(v)
    if (n) out.add(n)
    else if (Array.isArray(v)) v.forEach(walk)
    else if (v && typeof v === 'object') Object.values(v).forEach(walk)
  }
  walk(config)
  return [...out].sort()
}

/**
 * Kernel-side only, at the moment of use: a copy of the config with every `secret:NAME`
 * replaced by its value. The result must never be logged, returned over the API or
 * written anywhere; keep it as short-lived as the operation that needs it.
 * A missing secret is E_SECRET_NOT_FOUND naming it.
 */
export async function resolveSecretRefs<T = MagflockConfig>(config: T, store: Pick<SecretStore, 'get'>): Promise<T> {
  const cache = new Map<string, string>()
  const walk = async (v: unknown): Promise<unknown> => {
    const name = secretRefName(v)
    if (name) {
      if (!cache.has(name)) {
        const value = await store.get(name)
        if (value === undefined) throw SECRET_NOT_FOUND({ name })
        cache.set(name, value)
      }
      return cache.get(name)
    }
    if (Array.isArray(v)) return Promise.all(v.map(walk))
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v)) out[k] = await walk(x)
      return out
    }
    return v
  }
  return (await walk(config)) as T
}
