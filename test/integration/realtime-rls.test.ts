import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { startTestPostgres, type TestPostgres } from '../helpers/pg.js'
import { arrayLiteral, RowVisibility } from '../../src/realtime/rls.js'
import { KEYS_ONLY } from '../../src/realtime/hub.js'
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

  const change = (r: Relation, record: Record<string, string>): Change => ({ type: 'INSERT', relation: r, record, oldRecord: null, commitTime: Date.now() })
  const deletion = (r: Relation, oldRecord: Record<string, string>): Change => ({ type: 'DELETE', relation: r, record: null, oldRecord, commitTime: Date.now() })
  const group = (key: string, role: string, sub: string) => ({ key, role, claims: { role, sub, exp: 2e9 } })

  it('lets each group see only the rows its policy allows, and nothing without SELECT', async () => {
    const v = new RowVisibility(() => pool)
    const groups = [group('a', 'app_user', 'alice'), group('b', 'app_user', 'bob'), group('o', 'outsider', 'alice')]
    expect([...(await v.visibleGroups(change(rel, { id: '1', owner: 'alice' }), groups))], v.lastError).toEqual(['a'])
    expect([...(await v.visibleGroups(change(rel, { id: '2', owner: 'bob' }), groups))], v.lastError).toEqual(['b'])
    expect(v.checks).toBe(4) // once per group with SELECT, per change; the outsider never queries
  })

  it('waits for the change\'s transaction to be visible before checking its row (decoding can send a commit before other sessions see it)', async () => {
    // A transaction other sessions cannot see yet, as a decoded commit can be just after its
    // WAL flush: still open here, committed a moment after the check started.
    const writer = new pg.Client(db.connection())
    await writer.connect()
    try {
      await writer.query('begin')
      await writer.query(`insert into notes values (500, 'alice')`)
      const xid = Number((await writer.query<{ x: string }>('select txid_current() % 4294967296 as x')).rows[0]!.x)
      const v = new RowVisibility(() => pool)
      const checking = v.visibleGroups({ ...change(rel, { id: '500', owner: 'alice' }), xid }, [group('a', 'app_user', 'alice')])
      await new Promise((r) => setTimeout(r, 50))
      await writer.query('commit')
      expect([...(await checking)], v.lastError).toEqual(['a'])
      expect(v.visibilityWaits).toBeGreaterThan(0)
    } finally {
      await writer.end()
    }
  })

  it('skips the per-row query on a table without RLS', async () => {
    const v = new RowVisibility(() => pool)
    const oid = Number((await db.query<{ oid: string }>(`select 'public.open_t'::regclass::oid as oid`)).rows[0]!.oid)
    const open: Relation = { oid, schema: 'public', table: 'open_t', replicaIdentity: 'd', columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }] }
    const seen = await v.visibleGroups(change(open, { id: '1' }), [group('a', 'app_user', 'x'), group('o', 'outsider', 'x')])
    expect([...seen]).toEqual(['a'])
    expect(v.checks).toBe(0)
  })

  it('checks a whole batch of rows with one round trip per group, in order', async () => {
    await db.query(`insert into notes select g, case when g % 2 = 0 then 'alice' else 'bob' end from generate_series(10, 59) g`)
    const v = new RowVisibility(() => pool)
    const groups = [group('a', 'app_user', 'alice'), group('b', 'app_user', 'bob'), group('o', 'outsider', 'alice')]
    const items = []
    for (let id = 10; id < 60; id++) items.push({ change: change(rel, { id: String(id), owner: 'x' }), groups })
    // A row that is not there (deleted since) is seen by nobody.
    items.push({ change: change(rel, { id: '9999', owner: 'alice' }), groups })
    const answers = await v.visibleBatch(items)
    expect(answers).toHaveLength(51)
    answers.slice(0, 50).forEach((a, i) => expect([...a], `row ${10 + i}`).toEqual([(10 + i) % 2 === 0 ? 'a' : 'b']))
    expect([...answers[50]!]).toEqual([])
    expect(v.checks).toBe(2) // one statement per group with SELECT for the 51 rows
    // Keys travel as quoted array elements: quotes and backslashes escaped.
    expect(arrayLiteral(['a"b', 'c\\d', ''])).toBe('{"a\\"b","c\\\\d",""}')
  })

  it('checks many groups with one round trip per pool connection; a group whose policy errors is denied alone', async () => {
    const v = new RowVisibility(() => pool)
    const subs = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy']
    const groups = subs.map((s) => group(s, 'app_user', s))
    const items = [1, 2].map((id) => ({ change: change(rel, { id: String(id), owner: 'x' }), groups }))
    const answers = await v.visibleBatch(items)
    expect(answers.map((a) => [...a]), v.lastError).toEqual([['alice'], ['bob']])
    expect(v.checks).toBe(2) // 10 groups, a pool of 2: two round trips, not ten
    await db.query(`create role picky nologin; grant select on public.notes to picky;
      create policy picky_boom on public.notes for select to picky using ((1 / (id - id)) = 1)`)
    const w = new RowVisibility(() => pool)
    const mixed = [group('alice', 'app_user', 'alice'), group('bob', 'app_user', 'bob'), group('picky', 'picky', 'alice')]
    const seen = await w.visibleBatch([{ change: change(rel, { id: '1', owner: 'x' }), groups: mixed }])
    expect([...seen[0]!]).toEqual(['alice'])
    expect(w.lastError).toMatch(/division by zero/)
    // The failed chunk (alice and picky together) was checked again group by group.
    expect(w.checks).toBe(4)
    await db.query('drop policy picky_boom on public.notes; revoke select on public.notes from picky; drop role picky')
  })

  it('denies a group whose policy errors, and says why', async () => {
    const v = new RowVisibility(() => pool)
    const bad = { key: 'x', role: 'app_user', claims: { role: 'app_user', sub: 'alice', exp: 2e9 } }
    await db.query(`create table public.strict_t (id int primary key); alter table strict_t enable row level security;
      create policy boom on strict_t for select using ((1 / (id - id)) = 1); grant select on strict_t to app_user; insert into strict_t values (1)`)
    const oid = Number((await db.query<{ oid: string }>(`select 'public.strict_t'::regclass::oid as oid`)).rows[0]!.oid)
    const strict: Relation = { oid, schema: 'public', table: 'strict_t', replicaIdentity: 'd', columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }] }
    expect([...(await v.visibleGroups(change(strict, { id: '1' }), [bad]))]).toEqual([])
    expect(v.lastError).toMatch(/division by zero/)
    // The pool's connection is usable afterwards (the failed transaction was rolled back).
    expect([...(await v.visibleGroups(change(rel, { id: '1' }), [group('a', 'app_user', 'alice')]))]).toEqual(['a'])
  })

  it('delivers a DELETE to groups with SELECT; on an RLS table, RLS-bound groups get the key only', async () => {
    const v = new RowVisibility(() => pool)
    const groups = [group('a', 'app_user', 'alice'), group('o', 'outsider', 'alice'), { key: 's', role: 'postgres', claims: { role: 'postgres', exp: 2e9 } }]
    const seen = await v.visibleGroups(deletion(rel, { id: '424242' }), groups)
    expect([...seen].sort()).toEqual(['a', `a${KEYS_ONLY}`, 's'])
    expect(v.checks).toBe(0) // a deleted row cannot be looked up: no per-row query
    // From the cache alone too (the fast path), with the same answer.
    expect([...v.visibleGroupsCached(deletion(rel, { id: '1' }), groups)!].sort()).toEqual(['a', `a${KEYS_ONLY}`, 's'])
  })

  it('gives a cached answer again without working it out, until an entry it read is set again or cleared', async () => {
    const v = new RowVisibility(() => pool)
    await db.query('drop table if exists public.open_t; create table public.open_t (id int primary key); grant select on open_t to app_user')
    const oid = Number((await db.query<{ oid: string }>(`select 'public.open_t'::regclass::oid as oid`)).rows[0]!.oid)
    const open: Relation = { oid, schema: 'public', table: 'open_t', replicaIdentity: 'd', columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }] }
    const groups = [group('a', 'app_user', 'alice'), group('o', 'outsider', 'alice')]
    // The batch path reads the table's and the roles' entries into the cache.
    expect([...(await v.visibleGroups(change(open, { id: '1' }), groups))]).toEqual(['a'])
    const first = v.visibleGroupsCached(change(open, { id: '2' }), groups)!
    expect([...first]).toEqual(['a'])
    // The same answer, not worked out again (one lookup per change on a busy stream).
    expect(v.visibleGroupsCached(change(open, { id: '3' }), groups)).toBe(first)
    expect(open.primaryKey).toEqual(['id'])
    // A DELETE and another set of groups are other questions.
    expect(v.visibleGroupsCached(deletion(open, { id: '3' }), groups)).not.toBe(first)
    expect([...v.visibleGroupsCached(change(open, { id: '4' }), [group('o', 'outsider', 'alice')])!]).toEqual([])
    expect([...v.visibleGroupsCached(change(open, { id: '4' }), groups)!]).toEqual(['a'])
    // Granted, and the cache cleared (as after a gap in the stream): never the remembered answer.
    await db.query('grant select on open_t to outsider')
    v.invalidate()
    expect(v.visibleGroupsCached(change(open, { id: '5' }), groups)).toBeUndefined()
    expect([...(await v.visibleGroups(change(open, { id: '5' }), groups))].sort()).toEqual(['a', 'o'])
    expect([...v.visibleGroupsCached(change(open, { id: '6' }), groups)!].sort()).toEqual(['a', 'o'])
    await db.query('drop table open_t')
  })

  it('looks rows up by the primary key when REPLICA IDENTITY FULL flags every column (json has no equality)', async () => {
    await db.query(`create table public.docs (id int primary key, owner text, body json); alter table docs replica identity full;
      alter table docs enable row level security; create policy own_docs on docs for select using (owner = current_setting('request.jwt.claims', true)::json->>'sub');
      grant select on docs to app_user; insert into docs values (1, 'alice', '{"a": 1}')`)
    const oid = Number((await db.query<{ oid: string }>(`select 'public.docs'::regclass::oid as oid`)).rows[0]!.oid)
    const docs: Relation = { oid, schema: 'public', table: 'docs', replicaIdentity: 'f', columns: [{ name: 'id', typeOid: 23, type: 'int4', key: true }, { name: 'owner', typeOid: 25, type: 'text', key: true }, { name: 'body', typeOid: 114, type: 'json', key: true }] }
    const v = new RowVisibility(() => pool)
    const seen = await v.visibleGroups(change(docs, { id: '1', owner: 'alice', body: '{"a": 1}' }), [group('a', 'app_user', 'alice'), group('b', 'app_user', 'bob')])
    expect([...seen], v.lastError).toEqual(['a'])
    expect(docs.primaryKey).toEqual(['id'])
  })
})
