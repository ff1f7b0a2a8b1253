import type pg from 'pg'
import type { Change } from './change.js'
import type { VisibilityGroup } from './hub.js'

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
}

const TTL_MS = 5000

export class RowVisibility {
  private readonly tables = new Map<number, { at: number; info: TableInfo | undefined }>()
  private readonly privileges = new Map<string, { at: number; select: boolean; bypass: boolean }>()
  checks = 0
  /** The last error a row check met (a failing check denies); for status and tests. */
  lastError: string | undefined

  constructor(private readonly pool: () => pg.Pool | undefined) {}

  invalidate(): void {
    this.tables.clear()
    this.privileges.clear()
  }

  async visibleGroups(ch: Change, groups: VisibilityGroup[]): Promise<Set<string>> {
    const out = new Set<string>()
    const pool = this.pool()
    if (!pool) return out
    const rel = ch.relation
    const info = await this.tableInfo(pool, rel.oid)
    if (!info) return out
    // Groups are checked concurrently, as many at once as the pool has connections.
    await Promise.all(
      groups.map(async (g) => {
        const priv = await this.privilege(pool, g.role, rel.oid)
        if (!priv.select) return
        if (!info.rls || (priv.bypass && !info.force) || (await this.rowVisible(pool, ch, info, g))) out.add(g.key)
      }),
    )
    return out
  }

  /**
   * The answer from cache alone, when no query is needed (every group's privilege and the
   * table's RLS flag cached, no group needing a per-row check); undefined otherwise.
   */
  visibleGroupsCached(ch: Change, groups: VisibilityGroup[]): Set<string> | undefined {
    const now = Date.now()
    const t = this.tables.get(ch.relation.oid)
    if (!t || now - t.at >= TTL_MS) return undefined
    const out = new Set<string>()
    if (!t.info) return out
    for (const g of groups) {
      const p = this.privileges.get(`${g.role}\u0000${ch.relation.oid}`)
      if (!p || now - p.at >= TTL_MS) return undefined
      if (!p.select) continue
      if (t.info.rls && !(p.bypass && !t.info.force)) return undefined
      out.add(g.key)
    }
    return out
  }

  private async tableInfo(pool: pg.Pool, oid: number): Promise<TableInfo | undefined> {
    const hit = this.tables.get(oid)
    if (hit && Date.now() - hit.at < TTL_MS) return hit.info
    const r = await pool.query<{ rls: boolean; force: boolean; attname: string | null; typ: string | null }>(
      `select c.relrowsecurity as rls, c.relforcerowsecurity as force, a.attname, format_type(a.atttypid, a.atttypmod) as typ
         from pg_class c left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.oid = $1`,
      [oid],
    )
    const first = r.rows[0]
    const info = first ? { rls: first.rls, force: first.force, types: new Map(r.rows.filter((x) => x.attname).map((x) => [x.attname!, x.typ!])) } : undefined
    this.tables.set(oid, { at: Date.now(), info })
    return info
  }

  private async privilege(pool: pg.Pool, role: string, oid: number): Promise<{ select: boolean; bypass: boolean }> {
    const key = `${role}\u0000${oid}`
    const hit = this.privileges.get(key)
    if (hit && Date.now() - hit.at < TTL_MS) return hit
    const r = await pool.query<{ can_select: boolean; bypass: boolean }>(
      `select has_table_privilege(r.oid, $2::oid, 'SELECT') as can_select, (r.rolsuper or r.rolbypassrls) as bypass
         from pg_roles r where r.rolname = $1`,
      [role, oid],
    )
    const v = { at: Date.now(), select: r.rows[0]?.can_select ?? false, bypass: r.rows[0]?.bypass ?? false }
    this.privileges.set(key, v)
    return v
  }

  private async rowVisible(pool: pg.Pool, ch: Change, info: TableInfo, g: VisibilityGroup): Promise<boolean> {
    const rel = ch.relation
    const row = ch.record
    const keys = rel.columns.filter((c) => c.key)
    if (!row || keys.length === 0 || keys.some((k) => row[k.name] === undefined || row[k.name] === null)) return false
    const params: unknown[] = []
    const where = keys.map((k) => {
      params.push(row[k.name])
      return `${ident(k.name)} = $${params.length}::${info.types.get(k.name) ?? 'text'}`
    })
    const client = await pool.connect()
    this.checks++
    try {
      await client.query('begin read only')
      await client.query(`set local role ${ident(g.role)}`)
      await client.query(`select set_config('request.jwt.claims', $1::text, true)`, [JSON.stringify(g.claims)])
      const r = await client.query(`select 1 from ${ident(rel.schema)}.${ident(rel.table)} where ${where.join(' and ')}`, params)
      return (r.rowCount ?? 0) > 0
    } catch (err) {
      // A policy that errors for this role denies, as it would for a direct query.
      this.lastError = (err as Error).message
      return false
    } finally {
      await client.query('rollback').catch(() => undefined)
      client.release()
    }
  }
}

export function ident(s: string): string {
  return `"${s.replace(/"/g, '""')}"`
}
