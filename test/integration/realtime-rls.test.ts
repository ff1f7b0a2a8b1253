import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { startTestPostgres, type TestPostgres } from '../helpers/pg.js'
import { RowVisibility } from '../../src/realtime/rls.js'
import type { Change } from '../../src/realtime/change.js'
import type { Relation } from '../../src/realtime/pgoutput.js'

describe('RowVisibility (RLS as the subscriber role with its claims)', () => {
  let db: TestPostgres
  let pool: pg.Pool
  let rel: Relation
  beforeAll(async () => {
    db = await startTestPostgres()
    await db.query(`create table public.notes (id int primary key, owner text not null);
      alter table public.notes enable row level security;
      create policy own on public.notes for select using (owner = current_setting('request.jwt.claims', true)::json->>'sub');
      create role app_user nologin; create role outsider nologin; grant select on public.notes to app_user;
      create table public.open_t (id int primary key); grant select on public.open_t to app_user;
      insert into notes values (1, 'alice'), (2, 'bob'); insert into open_t values (1);`)
    pool = new pg.Pool({ ...db.connection(), max: 2 })
    const oid = Number((await db.query<{ oid: string }>(`select 'public.notes'::regclass::oid as oid`)).rows[0]!.oid)
    rel = { oid, schema: 'public', table: 'notes', replicaIdentity: 'd', columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }, { name: 'owner', typeOid: 25, type: 'text', key: false }] }
  })
  afterAll(async () => {
    await pool?.end()
    await db?.stop()
  })

  const change = (r: Relation, record: Record<string, string>): Change => ({ type: 'INSERT', relation: r, record, oldRecord: null, commitTime: Date.now(), decodedAt: 0 })
  const group = (key: string, role: string, sub: string) => ({ key, role, claims: { role, sub, exp: 2e9 } })

  it('lets each group see only the rows its policy allows, and nothing without SELECT', async () => {
    const v = new RowVisibility(() => pool)
    const groups = [group('a', 'app_user', 'alice'), group('b', 'app_user', 'bob'), group('o', 'outsider', 'alice')]
    expect([...(await v.visibleGroups(change(rel, { id: '1', owner: 'alice' }), groups))], v.lastError).toEqual(['a'])
    expect([...(await v.visibleGroups(change(rel, { id: '2', owner: 'bob' }), groups))], v.lastError).toEqual(['b'])
    expect(v.checks).toBe(4) // once per group with SELECT, per change; the outsider never queries
  })

  it('skips the per-row query on a table without RLS', async () => {
    const v = new RowVisibility(() => pool)
    const oid = Number((await db.query<{ oid: string }>(`select 'public.open_t'::regclass::oid as oid`)).rows[0]!.oid)
    const open: Relation = { oid, schema: 'public', table: 'open_t', replicaIdentity: 'd', columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }] }
    const seen = await v.visibleGroups(change(open, { id: '1' }), [group('a', 'app_user', 'x'), group('o', 'outsider', 'x')])
    expect([...seen]).toEqual(['a'])
    expect(v.checks).toBe(0)
  })
})
