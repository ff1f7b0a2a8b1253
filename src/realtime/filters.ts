/**
 * postgres_changes filters as realtime-js sends them: `column=op.value`, op one of
 * eq, neq, lt, lte, gt, gte, in (value `(a,b,c)`, items optionally double-quoted).
 *
 * A filter is evaluated against the decoded row (text values from pgoutput) and the column's
 * type: numeric types compare as numbers, booleans as booleans, everything else as text (so
 * `lt` on text is a byte-wise comparison, not the column's collation; docs/realtime.md says so).
 */
export type FilterOp = 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte' | 'in'

export interface Filter {
  column: string
  op: FilterOp
  values: string[]
}

const OPS = new Set<FilterOp>(['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in'])
const NUMERIC = new Set(['int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'oid'])

export class FilterError extends Error {}

export function parseFilter(text: string): Filter {
  const m = /^([^=]+)=([a-z]+)\.([\s\S]*)$/.exec(text)
  if (!m) throw new FilterError(`invalid filter "${text}": expected column=op.value`)
  const [, column, op, raw] = m as unknown as [string, string, string, string]
  if (!OPS.has(op as FilterOp)) throw new FilterError(`invalid filter "${text}": operator "${op}" is not one of eq, neq, lt, lte, gt, gte, in`)
  if (op !== 'in') return { column: column.trim(), op: op as FilterOp, values: [raw] }
  const inner = /^\(([\s\S]*)\)$/.exec(raw.trim())
  if (!inner) throw new FilterError(`invalid filter "${text}": in takes a list, e.g. id=in.(1,2,3)`)
  const values = splitList(inner[1]!)
  if (values.length === 0 || values.length > 100) throw new FilterError(`invalid filter "${text}": in takes 1–100 values`)
  return { column: column.trim(), op: 'in', values }
}

function splitList(s: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!
    if (c === '"') quoted = !quoted
    else if (c === ',' && !quoted) {
      out.push(cur.trim())
      cur = ''
    } else cur += c
  }
  if (cur.trim() !== '' || out.length > 0) out.push(cur.trim())
  return out
}

/** Does a row (column → text value or null) pass the filter? A missing column never passes. */
export function matchFilter(f: Filter, row: Record<string, string | null>, typeOf: (column: string) => string | undefined): boolean {
  if (!(f.column in row)) return false
  const v = row[f.column]
  if (v === null || v === undefined) return false
  const type = typeOf(f.column) ?? 'text'
  const cmp = (want: string): number => {
    if (NUMERIC.has(type)) {
      const a = Number(v)
      const b = Number(want)
      return a === b ? 0 : a < b ? -1 : 1
    }
    if (type === 'bool') return boolText(v) === boolText(want) ? 0 : boolText(v) ? 1 : -1
    return v === want ? 0 : v < want ? -1 : 1
  }
  switch (f.op) {
    case 'eq':
      return cmp(f.values[0]!) === 0
    case 'neq':
      return cmp(f.values[0]!) !== 0
    case 'lt':
      return cmp(f.values[0]!) < 0
    case 'lte':
      return cmp(f.values[0]!) <= 0
    case 'gt':
      return cmp(f.values[0]!) > 0
    case 'gte':
      return cmp(f.values[0]!) >= 0
    case 'in':
      return f.values.some((w) => cmp(w) === 0)
  }
}

function boolText(s: string): boolean {
  return s === 't' || s === 'true'
}
