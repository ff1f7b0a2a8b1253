/**
 * A decoder for the pgoutput logical replication protocol, version 1 (PostgreSQL 10+):
 * Begin, Commit, Relation, Type, Insert, Update, Delete, Truncate, Origin, Message.
 *
 * Why our own and not pg-logical-replication's parser (we do use that package for the
 * replication connection): its parser runs every value through node-pg's global type parsers,
 * so timestamps become JS Dates (time zone and microseconds lost) and bigints lose precision.
 * Realtime clients expect the text form (realtime-js converts by column type itself), so
 * values stay the exact text Postgres sent. Unchanged TOAST values are reported as absent.
 */
export interface RelColumn {
  name: string
  typeOid: number
  type: string
  key: boolean
}

export interface Relation {
  oid: number
  schema: string
  table: string
  replicaIdentity: string
  columns: RelColumn[]
  /**
   * Primary key columns, filled in from the catalog by the visibility check (rls.ts): with
   * REPLICA IDENTITY FULL, pgoutput flags every column as key.
   */
  primaryKey?: string[] | undefined
}

export type Row = Record<string, string | null>

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: string; commitTime: number; xid: number }
  | { tag: 'commit'; commitLsn: string; endLsn: string; commitTime: number }
  | { tag: 'relation'; relation: Relation }
  | { tag: 'insert'; relation: Relation; new: Row }
  | { tag: 'update'; relation: Relation; old: Row | null; new: Row }
  | { tag: 'delete'; relation: Relation; old: Row }
  | { tag: 'truncate'; relations: Relation[] }
  | { tag: 'other'; code: string }

/** Postgres epoch (2000-01-01) in ms since the Unix epoch. */
const PG_EPOCH_MS = 946_684_800_000

/** Built-in type OIDs → names (the names realtime-js's transformers know). */
export const BUILTIN_TYPES: Record<number, string> = {
  16: 'bool', 17: 'bytea', 18: 'char', 19: 'name', 20: 'int8', 21: 'int2', 23: 'int4', 25: 'text', 26: 'oid',
  114: 'json', 142: 'xml', 600: 'point', 650: 'cidr', 700: 'float4', 701: 'float8', 790: 'money', 829: 'macaddr',
  869: 'inet', 1042: 'bpchar', 1043: 'varchar', 1082: 'date', 1083: 'time', 1114: 'timestamp', 1184: 'timestamptz',
  1186: 'interval', 1266: 'timetz', 1560: 'bit', 1562: 'varbit', 1700: 'numeric', 2950: 'uuid', 3614: 'tsvector',
  3802: 'jsonb', 3904: 'int4range', 3906: 'numrange', 3908: 'tsrange', 3910: 'tstzrange', 3912: 'daterange', 3926: 'int8range',
  1000: '_bool', 1001: '_bytea', 1005: '_int2', 1007: '_int4', 1009: '_text', 1014: '_bpchar', 1015: '_varchar', 1016: '_int8',
  1021: '_float4', 1022: '_float8', 1115: '_timestamp', 1182: '_date', 1185: '_timestamptz', 1231: '_numeric', 2951: '_uuid',
  199: '_json', 3807: '_jsonb',
}

export function lsnText(hi: number, lo: number): string {
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`
}

export class PgoutputDecoder {
  private readonly relations = new Map<number, Relation>()
  private readonly types = new Map<number, string>()
  private buf: Buffer = Buffer.alloc(0)
  private o = 0

  relation(oid: number): Relation | undefined {
    return this.relations.get(oid)
  }

  /** The message at `start` of `buf` (a whole XLogData message may be handed over, unsliced). */
  decode(buf: Buffer, start = 0): PgoutputMessage {
    this.buf = buf
    this.o = start + 1
    const code = String.fromCharCode(buf[start]!)
    switch (code) {
      case 'B': {
        const finalLsn = this.lsn()
        const commitTime = this.time()
        return { tag: 'begin', finalLsn, commitTime, xid: this.int32() }
      }
      case 'C': {
        this.o += 1 // flags
        const commitLsn = this.lsn()
        const endLsn = this.lsn()
        return { tag: 'commit', commitLsn, endLsn, commitTime: this.time() }
      }
      case 'R': {
        const oid = this.int32()
        const schema = this.cstr()
        const table = this.cstr()
        const replicaIdentity = String.fromCharCode(this.byte())
        const n = this.int16()
        const columns: RelColumn[] = []
        for (let i = 0; i < n; i++) {
          const flags = this.byte()
          const name = this.cstr()
          const typeOid = this.int32()
          this.int32() // type modifier
          columns.push({ name, typeOid, type: this.types.get(typeOid) ?? BUILTIN_TYPES[typeOid] ?? 'text', key: (flags & 1) === 1 })
        }
        const relation = { oid, schema: schema === '' ? 'pg_catalog' : schema, table, replicaIdentity, columns }
        this.relations.set(oid, relation)
        return { tag: 'relation', relation }
      }
      case 'Y': {
        const oid = this.int32()
        this.cstr() // schema
        this.types.set(oid, this.cstr())
        return { tag: 'other', code }
      }
      case 'I': {
        const rel = this.rel()
        this.byte() // 'N'
        return { tag: 'insert', relation: rel, new: this.tuple(rel) }
      }
      case 'U': {
        const rel = this.rel()
        let old: Row | null = null
        const kind = String.fromCharCode(this.byte())
        if (kind === 'K' || kind === 'O') {
          old = this.tuple(rel)
          this.byte() // 'N'
        }
        return { tag: 'update', relation: rel, old, new: this.tuple(rel) }
      }
      case 'D': {
        const rel = this.rel()
        this.byte() // 'K' or 'O'
        return { tag: 'delete', relation: rel, old: this.tuple(rel) }
      }
      case 'T': {
        const n = this.int32()
        this.byte() // options
        const relations: Relation[] = []
        for (let i = 0; i < n; i++) relations.push(this.rel())
        return { tag: 'truncate', relations }
      }
      default:
        return { tag: 'other', code }
    }
  }

  private rel(): Relation {
    const oid = this.int32()
    const r = this.relations.get(oid)
    if (!r) throw new Error(`pgoutput: change for relation ${oid} before its Relation message`)
    return r
  }

  private tuple(rel: Relation): Row {
    const n = this.int16()
    const row: Row = {}
    for (let i = 0; i < n; i++) {
      const col = rel.columns[i]
      const kind = String.fromCharCode(this.byte())
      if (kind === 'n') {
        if (col) row[col.name] = null
      } else if (kind === 't' || kind === 'b') {
        const len = this.int32()
        const v = this.buf.toString('utf8', this.o, this.o + len)
        this.o += len
        if (col) row[col.name] = v
      }
      // 'u': unchanged TOAST value, not sent by the server: left out of the row.
    }
    return row
  }

  private byte(): number {
    return this.buf[this.o++]!
  }
  private int16(): number {
    const v = this.buf.readInt16BE(this.o)
    this.o += 2
    return v
  }
  private int32(): number {
    const v = this.buf.readInt32BE(this.o)
    this.o += 4
    return v >>> 0
  }
  private lsn(): string {
    const hi = this.buf.readUInt32BE(this.o)
    const lo = this.buf.readUInt32BE(this.o + 4)
    this.o += 8
    return lsnText(hi, lo)
  }
  /** Commit time: int64 µs since 2000-01-01 → ms since the Unix epoch. */
  private time(): number {
    const us = this.buf.readBigInt64BE(this.o)
    this.o += 8
    return Number(us / 1000n) + PG_EPOCH_MS
  }
  private cstr(): string {
    const end = this.buf.indexOf(0, this.o)
    const s = this.buf.toString('utf8', this.o, end)
    this.o = end + 1
    return s
  }
}

const NUMBERS = new Set(['int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'oid'])

/**
 * A row as Supabase Realtime sends it (wal2json-like JSON values): numbers as numbers
 * (except values JSON cannot hold: NaN, Infinity, and integers past 2^53 stay text), booleans
 * as booleans, json/jsonb parsed, everything else the Postgres text form.
 */
export function jsonRow(rel: Relation, row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const c of rel.columns) {
    if (!(c.name in row)) continue
    out[c.name] = jsonValue(c.type, row[c.name] ?? null)
  }
  return out
}

export function jsonValue(type: string, v: string | null): unknown {
  if (v === null) return null
  if (NUMBERS.has(type)) {
    const n = Number(v)
    return Number.isFinite(n) && (Number.isSafeInteger(n) || !/^-?\d+$/.test(v)) ? n : v
  }
  if (type === 'bool') return v === 't' || v === 'true'
  if (type === 'json' || type === 'jsonb') {
    try {
      return JSON.parse(v)
    } catch {
      return v
    }
  }
  return v
}

const rowKeys = new WeakMap<Relation, string[]>()

/**
 * `JSON.stringify(jsonRow(rel, row))`, written straight to text (the per-change hot path:
 * no intermediate object). json/jsonb values are copied as Postgres printed them (valid JSON
 * by their type), small integers too.
 */
export function rowJson(rel: Relation, row: Row): string {
  let keys = rowKeys.get(rel)
  if (!keys) rowKeys.set(rel, (keys = rel.columns.map((c) => `${JSON.stringify(c.name)}:`)))
  let s = '{'
  const cols = rel.columns
  for (let i = 0; i < cols.length; i++) {
    const c = cols[i]!
    const v = row[c.name]
    if (v !== null && typeof v !== 'string') continue // not in the row (unchanged TOAST value)
    if (s.length > 1) s += ','
    s += keys[i]! + jsonText(c.type, v)
  }
  return s + '}'
}

function jsonText(type: string, v: string | null): string {
  if (v === null) return 'null'
  switch (type) {
    case 'int2':
    case 'int4':
    case 'oid':
      return v
    case 'int8':
      // Up to 15 digits is always a safe integer, and Postgres prints it as JSON would.
      return v.length <= 15 ? v : JSON.stringify(jsonValue(type, v))
    case 'bool':
      return v === 't' || v === 'true' ? 'true' : 'false'
    case 'json':
    case 'jsonb':
      return v
    case 'text':
    case 'varchar':
      return JSON.stringify(v)
    default:
      return JSON.stringify(jsonValue(type, v))
  }
}
