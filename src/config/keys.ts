import type { z } from 'zod'
import { MagflockConfig } from './schema.js'

/**
 * Introspection of the zod schema: which key paths exist, what type each expects (in words,
 * for error messages and docs), and how to turn a string (environment variable, `config set`
 * argument) into a value of that type. The schema stays the single source of truth.
 */

// zod 4 keeps the definition on `_zod.def`; we read only the few fields we need.
interface Def {
  type: string
  innerType?: z.ZodType
  shape?: Record<string, z.ZodType>
  valueType?: z.ZodType
  options?: z.ZodType[]
  entries?: Record<string, string>
  values?: unknown[]
  checks?: Array<{ _zod: { def: { check: string; format?: string; pattern?: RegExp } } }>
  defaultValue?: unknown
}

function def(s: z.ZodType): Def {
  return (s as unknown as { _zod: { def: Def } })._zod.def
}

/** Strips default/optional/nullable wrappers. */
export function unwrap(s: z.ZodType): z.ZodType {
  let cur = s
  for (;;) {
    const d = def(cur)
    if ((d.type === 'default' || d.type === 'optional' || d.type === 'nullable' || d.type === 'prefault') && d.innerType) cur = d.innerType
    else return cur
  }
}

export function kindOf(s: z.ZodType): string {
  return def(unwrap(s)).type
}

export function descriptionOf(s: z.ZodType): string | undefined {
  let cur: z.ZodType | undefined = s
  while (cur) {
    if (cur.description) return cur.description
    const d = def(cur)
    cur = d.type === 'default' || d.type === 'optional' || d.type === 'nullable' ? d.innerType : undefined
  }
  return undefined
}

export function childKeys(s: z.ZodType): string[] | undefined {
  const d = def(unwrap(s))
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : undefined
}

/**
 * The schema node for a dotted path, or undefined when no such key exists. Below a record
 * (postgres.settings) any sub-key is accepted and maps to the record's value type.
 */
export function schemaAt(path: string[], root: z.ZodType = MagflockConfig): z.ZodType | undefined {
  let cur: z.ZodType = root
  for (const seg of path) {
    const d = def(unwrap(cur))
    if (d.type === 'object' && d.shape) {
      const next: z.ZodType | undefined = Object.hasOwn(d.shape, seg) ? d.shape[seg] : undefined
      if (!next) return undefined
      cur = next
    } else if (d.type === 'record' && d.valueType) {
      cur = d.valueType
    } else return undefined
  }
  return cur
}

/** Every leaf key path in the schema (records count as one leaf: `postgres.settings`). */
export function allKeys(root: z.ZodType = MagflockConfig, prefix: string[] = []): string[] {
  const keys = childKeys(root)
  if (!keys) return [prefix.join('.')]
  const d = def(unwrap(root))
  return keys.flatMap((k) => allKeys(d.shape![k]!, [...prefix, k]))
}

/** What a schema node expects, in words: "an integer 1–65535", "one of trace, debug, info". */
export function describeExpected(s: z.ZodType): string {
  const inner = unwrap(s)
  const d = def(inner)
  switch (d.type) {
    case 'number': {
      const n = inner as unknown as { minValue: number | null; maxValue: number | null; isInt: boolean }
      const what = n.isInt ? 'an integer' : 'a number'
      const min = n.minValue !== null && Number.isFinite(n.minValue) && Math.abs(n.minValue) < 1e15 ? n.minValue : undefined
      const max = n.maxValue !== null && Number.isFinite(n.maxValue) && Math.abs(n.maxValue) < 1e15 ? n.maxValue : undefined
      if (min !== undefined && max !== undefined) return `${what} ${min}–${max}`
      if (min !== undefined) return `${what} ≥ ${min}`
      if (max !== undefined) return `${what} ≤ ${max}`
      return what
    }
    case 'string': {
      const regex = d.checks?.map((c) => c._zod.def).find((c) => c.format === 'regex')?.pattern
      return regex ? `a string matching ${String(regex)}` : 'a string'
    }
    case 'boolean':
      return 'true or false'
    case 'enum':
      return `one of ${Object.values(d.entries ?? {}).join(', ')}`
    case 'literal':
      return (d.values ?? []).length === 1 ? `exactly ${JSON.stringify(d.values![0])}` : `one of ${(d.values ?? []).map((v) => JSON.stringify(v)).join(', ')}`
    case 'object':
      return 'a mapping of keys'
    case 'record':
      return `a mapping of names to values (${describeExpected(d.valueType!)})`
    case 'union':
      return (d.options ?? []).map((o) => describeExpected(o)).join(' or ')
    case 'array':
      return 'a list'
    default:
      return `${/^[aeiou]/.test(d.type) ? 'an' : 'a'} ${d.type}`
  }
}

/**
 * Turns a string from an environment variable or `config set` into a value of the type the
 * key expects. Anything that does not convert is returned as the string, so validation then
 * reports it with the usual "expected …, got …" message.
 */
export function coerceString(s: z.ZodType | undefined, raw: string): unknown {
  if (!s) return raw
  const d = def(unwrap(s))
  const asNumber = () => (raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw)
  const asBool = () => (/^(true|yes|on|1)$/i.test(raw) ? true : /^(false|no|off|0)$/i.test(raw) ? false : raw)
  switch (d.type) {
    case 'number':
      return asNumber()
    case 'boolean':
      return asBool()
    case 'union': {
      // postgres.settings values: string | number | boolean. Keep numbers and booleans
      // typed so `shared_buffers=128MB` stays a string and `max_connections=50` a number.
      const kinds = (d.options ?? []).map((o) => def(unwrap(o)).type)
      if (kinds.includes('number') && /^-?\d+(\.\d+)?$/.test(raw.trim())) return Number(raw)
      if (kinds.includes('boolean') && /^(true|false)$/i.test(raw)) return raw.toLowerCase() === 'true'
      return raw
    }
    case 'object':
    case 'record':
    case 'array':
      // A whole section (or list) from one variable: accept JSON.
      try {
        return JSON.parse(raw) as unknown
      } catch {
        return raw
      }
    default:
      return raw
  }
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const m = a.length
  const n = b.length
  let prev = Array.from({ length: n + 1 }, (_, j) => j)
  for (let i = 1; i <= m; i++) {
    const cur = [i]
    for (let j = 1; j <= n; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1))
    }
    prev = cur
  }
  return prev[n]!
}

/** The closest candidate within a sensible distance, or undefined. */
export function suggest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const dist = editDistance(word, c)
    if (dist < bestD) {
      best = c
      bestD = dist
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3))
  return best !== undefined && bestD <= limit ? best : undefined
}

/** Suggests a full key path for an unknown one: `postgres.portt` → `postgres.port`. */
export function suggestKey(path: string[]): string | undefined {
  // Find the deepest known prefix, then suggest among its children.
  for (let i = path.length - 1; i >= 0; i--) {
    const parent = schemaAt(path.slice(0, i))
    if (!parent) continue
    const kids = childKeys(parent)
    if (!kids) return undefined
    const hit = suggest(path[i]!, kids)
    if (hit) return [...path.slice(0, i), hit].join('.')
    return undefined
  }
  return undefined
}

/** Keys whose values must never be echoed in errors or output unless they are secret refs. */
export function isSensitiveKey(path: string): boolean {
  return /(password|secret|token|encryptionkey|apikey|privatekey)/i.test(path.replace(/[._-]/g, ''))
}
