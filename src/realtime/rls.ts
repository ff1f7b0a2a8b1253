import type pg from 'pg'
import type { Change } from './change.js'
import { KEYS_ONLY, type VisibilityGroup } from './hub.js'

/**
 * Row visibility for postgres_changes: a change reaches a subscriber only if the subscriber's
 * database role may SELECT that row, checked *as that role with those claims*: in a read-only
 * transaction, `SET LOCAL ROLE <role>`, `request.jwt.claims` = the token's claims, then the
 * row looked up by its replica identity key. Once per group of identical role + claims.
 *
 * Shortcuts (cached for a few seconds): a role without SELECT on the table sees nothing;
 * a table without row-level security, or a role that bypasses it, sees every row without a
 * per-row query. A table with RLS and no key columns is never delivered to RLS-bound roles.
 * The row is read after the commit, so a row changed again since is judged by its newer
 * version (docs/realtime.md, "Limits").
 */
export interface TableInfo {
  rls: boolean
  force: boolean
  types: Map<string, string>
  /** Primary key columns (else the replica identity index's); undefined: neither exists. */
  pkey: string[] | undefined
}

const TTL_MS = 5000
/**
 * A cached entry older than this, used by the synchronous path, is re-read in the background:
 * under steady traffic the cache never expires, so changes never wait for that round trip (they
 * did, every 5 s, queued behind it). Entries still live at most TTL_MS.
 */
const REFRESH_MS = 3000

export class RowVisibility {
  private readonly tables = new Map<number, { at: number; info: TableInfo | undefined }>()
  private readonly privileges = new Map<string, { at: number; select: boolean; bypass: boolean }>()
  checks = 0
  /** How often a batch's row checks waited for its transactions to become visible. */
  visibilityWaits = 0
  /** The last error a row check met (a failing check denies); for status and tests. */
  lastError: string | undefined

  private readonly refreshing = new Set<string>()
  /** Bumped whenever a cached table or privilege entry is set or the caches are cleared. */
  private gen = 0
  /**
   * visibleGroupsCached's last answer per groups array (the hub keeps one array per set of
   * subscriptions, until they change): given again while no entry it read has been set since
   * and none is old enough to be re-read, for the same relation and kind of change. A busy
   * stream of one table then costs a lookup per change, not a Set and a key per group.
   */
  private readonly answers = new WeakMap<VisibilityGroup[], Answer>()
  private lastAnswer: Answer | undefined

  constructor(private readonly pool: () => pg.Pool | undefined) {}

  invalidate(): void {
    this.tables.clear()
    this.privileges.clear()
    this.gen++
  }

  async visibleGroups(ch: Change, groups: VisibilityGroup[]): Promise<Set<string>> {
    return (await this.visibleBatch([{ change: ch, groups }]))[0]!
  }

  /**
   * Which groups may see each change of a batch (in order). Per group, every row the batch
   * needs checked is checked in one round trip: one simple-protocol string holding
   * `begin read only; set local role …; set_config('request.jwt.claims', …)`, then per table
   * one `select … from unnest(<keys>) with ordinality … where exists (select 1 from <table>
   * where <key> = …)` answering which of the keys the role sees, then `rollback`. Groups
   * are checked concurrently, as many at once as the pool has connections.
   *
   * DELETE: the row is gone, so it cannot be checked (as in Supabase Realtime). A group with
   * SELECT on the table gets the DELETE; on a table with RLS, a group bound by it gets the
   * replica identity key columns only (its answer also holds `<group key>` + KEYS_ONLY).
   */
  async visibleBatch(items: Array<{ change: Change; groups: VisibilityGroup[] }>): Promise<Array<Set<string>>> {
    const out = items.map(() => new Set<string>())
    const pool = this.pool()
    if (!pool) return out
    /** group key → (table oid → rows to check: the change's index and its key values) */
    const need = new Map<string, { g: VisibilityGroup; tables: Map<number, { rel: Change['relation']; info: TableInfo; rows: Array<{ i: number; key: string[] }> }> }>()
    for (let i = 0; i < items.length; i++) {
      const { change: ch, groups } = items[i]!
      const rel = ch.relation
      const info = await this.tableInfo(pool, rel.oid)
      if (!info) continue
      rel.primaryKey = info.pkey
      for (const g of groups) {
        const priv = await this.privilege(pool, g.role, rel.oid)
        if (!priv.select) continue
        if (!info.rls || (priv.bypass && !info.force)) {
          out[i]!.add(g.key)
          continue
        }
        if (ch.type === 'DELETE') {
          out[i]!.add(g.key).add(`${g.key}${KEYS_ONLY}`)
          continue
        }
        const key = rowKey(rel, info, ch.record)
        if (!key) continue // no key to look the row up by: never delivered to RLS-bound roles
        let n = need.get(g.key)
        if (!n) need.set(g.key, (n = { g, tables: new Map() }))
        let t = n.tables.get(rel.oid)
        if (!t) n.tables.set(rel.oid, (t = { rel, info, rows: [] }))
        t.rows.push({ i, key })
      }
    }
    if (need.size > 0) {
      const xids = new Set<number>()
      for (const { tables } of need.values()) for (const t of tables.values()) for (const r of t.rows) if (items[r.i]!.change.xid !== undefined) xids.add(items[r.i]!.change.xid!)
      await this.awaitVisible(pool, [...xids])
    }
    // The groups are spread over the pool's connections: one round trip per connection per
    // batch, whatever the number of groups (100 groups: 4 round trips in parallel, not 100).
    const all = [...need.values()].map(({ g, tables }) => ({ g, tables: [...tables.values()] }))
    const lanes = Math.min(all.length, Math.max(1, pool.options.max ?? 1))
    const chunks: Array<typeof all> = Array.from({ length: lanes }, () => [])
    all.forEach((x, i) => chunks[i % lanes]!.push(x))
    await Promise.all(
      chunks.map(async (chunk) => {
        const seen = await this.checkGroups(pool, chunk)
        chunk.forEach(({ g }, j) => {
          for (const i of seen[j]!) out[i]!.add(g.key)
        })
      }),
    )
    return out
  }

  /**
   * Waits (briefly) until the changes' transactions are visible to a new snapshot. Logical
   * decoding sends a commit once its WAL is flushed, which is before the committing backend
   * leaves the proc array: a row check started at once could take a snapshot that does not
   * see the row yet and deny it to a subscriber allowed to see it (a lost change; seen under
   * load). One query per batch; the transactions' 32-bit ids are widened with the epoch of
   * the snapshot's xmax.
   */
  private async awaitVisible(pool: pg.Pool, xids: number[]): Promise<void> {
    if (xids.length === 0) return
    const sql = `select coalesce(bool_and(pg_visible_in_snapshot(
        ((((pg_snapshot_xmax(s)::text::bigint >> 32) - case when x > (pg_snapshot_xmax(s)::text::bigint & 4294967295) then 1 else 0 end) << 32) + x)::text::xid8, s)), true) as v
      from pg_current_snapshot() s, unnest($1::bigint[]) x`
    for (let attempt = 0, delay = 1; attempt < 12; attempt++, delay = Math.min(delay * 2, 100)) {
      const r = await pool.query<{ v: boolean }>(sql, [xids]).catch(() => undefined)
      if (!r || r.rows[0]?.v !== false) return
      this.visibilityWaits++
      await new Promise((res) => setTimeout(res, delay))
    }
  }

  /**
   * Several groups in one round trip: one read-only transaction in which each group in turn
   * sets its role and claims (`SET LOCAL ROLE` and `set_config(..., true)` may be repeated)
   * and runs its per-table lookups. A statement that fails (a policy erroring for one role)
   * aborts the lot: the groups are then checked one by one, so only that group is denied.
   */
  private async checkGroups(pool: pg.Pool, groups: Array<{ g: VisibilityGroup; tables: CheckTable[] }>): Promise<number[][]> {
    if (groups.length === 1) return [await this.checkGroup(pool, groups[0]!.g, groups[0]!.tables)]
    const client = await pool.connect()
    this.checks++
    const parts = ['begin read only']
    for (const { g, tables } of groups) parts.push(...groupStatements(client, g, tables))
    parts.push('rollback')
    let res: pg.QueryResult[]
    try {
      res = (await client.query(parts.join(';\n'))) as unknown as pg.QueryResult[]
    } catch {
      await client.query('rollback').catch(() => undefined)
      client.release()
      return Promise.all(groups.map(({ g, tables }) => this.checkGroup(pool, g, tables)))
    }
    client.release()
    let at = 1
    return groups.map(({ tables }) => {
      at += 2 // set local role, set_config
      const seen: number[] = []
      for (const t of tables) {
        for (const row of (res[at]?.rows ?? []) as Array<{ n: string }>) seen.push(t.rows[Number(row.n) - 1]!.i)
        at++
      }
      return seen
    })
  }

  /** One round trip for a group: the indexes (into the batch) of the rows it may SELECT. */
  private async checkGroup(pool: pg.Pool, g: VisibilityGroup, tables: CheckTable[]): Promise<number[]> {
    const client = await pool.connect()
    this.checks++
    const parts = ['begin read only', ...groupStatements(client, g, tables)]
    parts.push('rollback')
    try {
      const res = (await client.query(parts.join(';\n'))) as unknown as pg.QueryResult[]
      const seen: number[] = []
      tables.forEach((t, j) => {
        for (const row of (res[3 + j]?.rows ?? []) as Array<{ n: string }>) seen.push(t.rows[Number(row.n) - 1]!.i)
      })
      return seen
    } catch (err) {
      // A policy that errors for this role denies, as it would for a direct query.
      this.lastError = (err as Error).message
      await client.query('rollback').catch(() => undefined)
      return []
    } finally {
      client.release()
    }
  }

  /**
   * The answer from cache alone, when no query is needed (every group's privilege and the
   * table's RLS flag cached, no group needing a per-row check); undefined otherwise.
   */
  visibleGroupsCached(ch: Change, groups: VisibilityGroup[]): Set<string> | undefined {
    const now = Date.now()
    const oid = ch.relation.oid
    const del = ch.type === 'DELETE'
    // The last answer is checked first: a stream of changes asks for the same groups in a row.
    const a = groups === this.lastAnswer?.groups ? this.lastAnswer : this.answers.get(groups)
    if (a && a.gen === this.gen && a.oid === oid && a.del === del && now < a.until) {
      ch.relation.primaryKey = a.pkey
      return a.out
    }
    const t = this.tables.get(oid)
    if (!t || now - t.at >= TTL_MS) return undefined
    if (now - t.at >= REFRESH_MS) this.refreshAhead(`t${oid}`, (pool) => this.tableInfo(pool, oid, 0))
    const out = new Set<string>()
    if (!t.info) return out
    ch.relation.primaryKey = t.info.pkey
    let oldest = t.at
    for (const g of groups) {
      const p = this.privileges.get(`${g.role}\u0000${oid}`)
      if (!p || now - p.at >= TTL_MS) return undefined
      if (now - p.at >= REFRESH_MS) this.refreshAhead(`p${g.role}\u0000${oid}`, (pool) => this.privilege(pool, g.role, oid, 0))
      if (p.at < oldest) oldest = p.at
      if (!p.select) continue
      if (t.info.rls && !(p.bypass && !t.info.force)) {
        if (!del) return undefined
        out.add(`${g.key}${KEYS_ONLY}`)
      }
      out.add(g.key)
    }
    // Until an entry read here is old enough to be re-read, this is the answer (read-only).
    const answer = { groups, gen: this.gen, oid, del, until: oldest + REFRESH_MS, pkey: t.info.pkey, out }
    this.answers.set(groups, answer)
    this.lastAnswer = answer
    return out
  }

  /** One background re-read per cache key at a time (see REFRESH_MS); a failure leaves the entry to expire. */
  private refreshAhead(key: string, read: (pool: pg.Pool) => Promise<unknown>): void {
    const pool = this.pool()
    if (!pool || this.refreshing.has(key)) return
    this.refreshing.add(key)
    void read(pool)
      .catch(() => undefined)
      .finally(() => this.refreshing.delete(key))
  }

  private async tableInfo(pool: pg.Pool, oid: number, maxAge = TTL_MS): Promise<TableInfo | undefined> {
    const hit = this.tables.get(oid)
    if (hit && Date.now() - hit.at < maxAge) return hit.info
    const r = await pool.query<{ rls: boolean; force: boolean; attname: string | null; typ: string | null; pkey: string[] | null }>(
      `select c.relrowsecurity as rls, c.relforcerowsecurity as force, a.attname, format_type(a.atttypid, a.atttypmod) as typ,
              (select array(select ka.attname::text from unnest(i.indkey::int2[]) with ordinality k(n, o) join pg_attribute ka on ka.attrelid = i.indrelid and ka.attnum = k.n order by k.o)
                 from pg_index i where i.indrelid = c.oid and (i.indisprimary or i.indisreplident) order by i.indisprimary desc limit 1) as pkey
         from pg_class c left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.oid = $1`,
      [oid],
    )
    const first = r.rows[0]
    const info = first ? { rls: first.rls, force: first.force, types: new Map(r.rows.filter((x) => x.attname).map((x) => [x.attname!, x.typ!])), pkey: first.pkey ?? undefined } : undefined
    this.tables.set(oid, { at: Date.now(), info })
    this.gen++
    return info
  }

  private async privilege(pool: pg.Pool, role: string, oid: number, maxAge = TTL_MS): Promise<{ select: boolean; bypass: boolean }> {
    const key = `${role}\u0000${oid}`
    const hit = this.privileges.get(key)
    if (hit && Date.now() - hit.at < maxAge) return hit
    const r = await pool.query<{ can_select: boolean; bypass: boolean }>(
      `select has_table_privilege(r.oid, $2::oid, 'SELECT') as can_select, (r.rolsuper or r.rolbypassrls) as bypass
         from pg_roles r where r.rolname = $1`,
      [role, oid],
    )
    const v = { at: Date.now(), select: r.rows[0]?.can_select ?? false, bypass: r.rows[0]?.bypass ?? false }
    this.privileges.set(key, v)
    this.gen++
    return v
  }
}

/** A visibleGroupsCached answer kept for its groups array (see RowVisibility.answers). */
interface Answer {
  groups: VisibilityGroup[]
  gen: number
  oid: number
  del: boolean
  until: number
  pkey: string[] | undefined
  out: Set<string>
}

interface CheckTable {
  rel: Change['relation']
  info: TableInfo
  rows: Array<{ i: number; key: string[] }>
}

/**
 * A group's statements inside the check transaction: its role, its claims, then per table
 * one `select … from unnest(<keys>) with ordinality … where exists (select 1 from <table>
 * where <key> = …)` answering which of the keys the role sees.
 */
function groupStatements(client: pg.PoolClient, g: VisibilityGroup, tables: CheckTable[]): string[] {
  const lit = (v: string) => client.escapeLiteral(v)
  const parts = [`set local role ${ident(g.role)}`, `select set_config('request.jwt.claims', ${lit(JSON.stringify(g.claims))}, true)`]
  for (const t of tables) {
    const keys = keyNames(t.rel, t.info)
    const cols = keys.map((_, j) => `k${j}`)
    const arrays = keys.map((k, j) => `${lit(arrayLiteral(t.rows.map((r) => r.key[j]!)))}::${t.info.types.get(k) ?? 'text'}[]`)
    const match = keys.map((k, j) => `t.${ident(k)} = u.k${j}`).join(' and ')
    parts.push(`select u.n from unnest(${arrays.join(', ')}) with ordinality as u(${cols.join(', ')}, n) where exists (select 1 from ${ident(t.rel.schema)}.${ident(t.rel.table)} t where ${match})`)
  }
  return parts
}

/** The replica identity key of a row (Postgres text), or undefined when a part is missing. */
function rowKey(rel: Change['relation'], info: TableInfo, row: Change['record']): string[] | undefined {
  const keys = keyNames(rel, info)
  if (!row || keys.length === 0) return undefined
  const out: string[] = []
  for (const k of keys) {
    const v = row[k]
    if (typeof v !== 'string') return undefined
    out.push(v)
  }
  return out
}

/**
 * The columns a row is looked up by: the primary key (or replica identity index), else the
 * columns pgoutput flags as key (with REPLICA IDENTITY FULL that is every column).
 */
function keyNames(rel: Change['relation'], info: TableInfo): string[] {
  return info.pkey ?? rel.columns.filter((c) => c.key).map((c) => c.name)
}

/** A Postgres array literal of text elements, each quoted: {"a","b \\" c"}. */
export function arrayLiteral(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`
}

export function ident(s: string): string {
  return `"${s.replace(/"/g, '""')}"`
}
