import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, ProtocolError } from '../../src/realtime/protocol.js'
import { matchFilter, parseFilter } from '../../src/realtime/filters.js'
import { signJwt, verifyJwt } from '../../src/realtime/jwt.js'
import { jsonRow, jsonValue, PgoutputDecoder, rowJson, type Relation } from '../../src/realtime/pgoutput.js'
import { TopicPresence } from '../../src/realtime/presence.js'
import { textFrame, topicAllowed } from '../../src/realtime/hub.js'

describe('realtime protocol frames', () => {
  it('decodes vsn 2.0.0 arrays and vsn 1.0.0 objects', () => {
    expect(decodeFrame(Buffer.from('["1","2","realtime:a","phx_join",{"config":{}}]'), false, '2.0.0')).toEqual({ joinRef: '1', ref: '2', topic: 'realtime:a', event: 'phx_join', payload: { config: {} } })
    expect(decodeFrame(Buffer.from('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}'), false, '1.0.0')).toEqual({ joinRef: null, ref: '5', topic: 'phoenix', event: 'heartbeat', payload: {} })
  })

  it('decodes the binary user broadcast push of realtime-js (kind 3, JSON payload)', () => {
    const head = Buffer.from([3, 1, 1, 10, 5, 0, 1])
    const buf = Buffer.concat([head, Buffer.from('12realtime:rhello'), Buffer.from('{"x":1}')])
    expect(decodeFrame(buf, true, '2.0.0')).toEqual({ joinRef: '1', ref: '2', topic: 'realtime:r', event: 'broadcast', payload: { type: 'broadcast', event: 'hello', payload: { x: 1 } } })
  })

  it('refuses malformed frames with a ProtocolError naming the problem', () => {
    const bad: Array<[string, RegExp]> = [
      ['{nope', /not JSON/],
      ['[1,2,3]', /array of 5/],
      ['["1","2","","e",{}]', /topic/],
      ['["1","2","t","e",[]]', /payload/],
      ['[1,"2","t","e",{}]', /join_ref/],
      ['42', /expected/],
    ]
    for (const [text, re] of bad) expect(() => decodeFrame(Buffer.from(text), false, '2.0.0'), text).toThrow(re)
    expect(() => decodeFrame(Buffer.from([9, 0, 0, 0, 0, 0, 1]), true, '2.0.0')).toThrow(ProtocolError)
    expect(() => decodeFrame(Buffer.from([3, 9, 0, 0, 0, 0, 1]), true, '2.0.0')).toThrow(/truncated/)
  })

  it('encodes replies per version', () => {
    expect(encodeFrame('2.0.0', '1', '2', 't', 'phx_reply', { status: 'ok' })).toBe('["1","2","t","phx_reply",{"status":"ok"}]')
    expect(JSON.parse(encodeFrame('1.0.0', null, '2', 't', 'e', {}))).toEqual({ join_ref: null, ref: '2', topic: 't', event: 'e', payload: {} })
  })
})

describe('postgres_changes filters', () => {
  const types: Record<string, string> = { id: 'int4', name: 'text', ok: 'bool' }
  const typeOf = (c: string) => types[c]
  const m = (f: string, row: Record<string, string | null>) => matchFilter(parseFilter(f), row, typeOf)
  it('compares numbers numerically, text as text, booleans as booleans', () => {
    expect(m('id=gt.9', { id: '10' })).toBe(true) // '10' < '9' as text
    expect(m('id=lte.10', { id: '10' })).toBe(true)
    expect(m('id=lt.10', { id: '10' })).toBe(false)
    expect(m('id=gte.11', { id: '10' })).toBe(false)
    expect(m('name=eq.a.b', { name: 'a.b' })).toBe(true)
    expect(m('name=neq.x', { name: 'y' })).toBe(true)
    expect(m('name=in.(x,"y,z")', { name: 'y,z' })).toBe(true)
    expect(m('id=in.(1,2)', { id: '3' })).toBe(false)
    expect(m('ok=eq.true', { ok: 't' })).toBe(true)
    expect(m('id=eq.1', { id: null })).toBe(false)
    expect(m('missing=eq.1', { id: '1' })).toBe(false)
  })
  it('rejects unknown operators and malformed filters', () => {
    expect(() => parseFilter('id=like.1')).toThrow(/operator/)
    expect(() => parseFilter('id')).toThrow(/column=op.value/)
    expect(() => parseFilter('id=in.1,2')).toThrow(/list/)
  })
})

describe('realtime JWT (HS256)', () => {
  const now = 1_700_000_000_000
  const exp = now / 1000 + 60
  it('verifies its own tokens and refuses forged, expired, alg none and claimless ones', () => {
    const t = signJwt({ role: 'anon', exp }, 's1')
    expect(verifyJwt(t, 's1', now)).toMatchObject({ ok: true, claims: { role: 'anon' } })
    expect(verifyJwt(t, 's2', now)).toMatchObject({ ok: false, reason: 'signature' })
    expect(verifyJwt(t, 's1', now + 61_000)).toMatchObject({ ok: false, reason: 'expired' })
    const [, body] = t.split('.')
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${body}.`
    expect(verifyJwt(none, 's1', now)).toMatchObject({ ok: false, reason: 'signature' })
    expect(verifyJwt(signJwt({ exp }, 's1'), 's1', now)).toMatchObject({ ok: false, reason: 'missing_claims' })
    expect(verifyJwt('a.b', 's1', now)).toMatchObject({ ok: false, reason: 'malformed' })
    expect(verifyJwt(undefined, 's1', now)).toMatchObject({ ok: false, reason: 'malformed' })
  })
})

describe('pgoutput decoder', () => {
  const rel = Buffer.concat([
    Buffer.from('R'),
    u32(16384),
    Buffer.from('public\0t\0'),
    Buffer.from('d'),
    u16(2),
    Buffer.from([1]),
    Buffer.from('id\0'),
    u32(23),
    u32(0xffffffff),
    Buffer.from([0]),
    Buffer.from('ts\0'),
    u32(1184),
    u32(0xffffffff),
  ])
  it('keeps values as Postgres text and maps type OIDs', () => {
    const d = new PgoutputDecoder()
    const r = d.decode(rel)
    expect(r).toMatchObject({ tag: 'relation', relation: { schema: 'public', table: 't', columns: [{ name: 'id', type: 'int4', key: true }, { name: 'ts', type: 'timestamptz', key: false }] } })
    const ins = Buffer.concat([Buffer.from('I'), u32(16384), Buffer.from('N'), u16(2), Buffer.from('t'), u32(2), Buffer.from('42'), Buffer.from('t'), u32(29), Buffer.from('2026-01-02 03:04:05.123456+00')])
    expect(d.decode(ins)).toMatchObject({ tag: 'insert', new: { id: '42', ts: '2026-01-02 03:04:05.123456+00' } })
    const del = Buffer.concat([Buffer.from('D'), u32(16384), Buffer.from('K'), u16(2), Buffer.from('t'), u32(1), Buffer.from('7'), Buffer.from('n')])
    expect(d.decode(del)).toMatchObject({ tag: 'delete', old: { id: '7', ts: null } })
    const begin = Buffer.concat([Buffer.from('B'), u32(0), u32(0x100), Buffer.from(big(1_000_000n)), u32(5)])
    expect(d.decode(begin)).toMatchObject({ tag: 'begin', finalLsn: '0/100', commitTime: 946_684_801_000, xid: 5 })
  })
  it('turns values into JSON as Supabase sends them', () => {
    expect(jsonValue('int4', '5')).toBe(5)
    expect(jsonValue('int8', '9007199254740993')).toBe('9007199254740993')
    expect(jsonValue('numeric', 'NaN')).toBe('NaN')
    expect(jsonValue('bool', 'f')).toBe(false)
    expect(jsonValue('jsonb', '{"a":1}')).toEqual({ a: 1 })
    expect(jsonValue('_int4', '{1,2}')).toBe('{1,2}')
  })
  it('writes a row as JSON text equal to the JSON of jsonRow (the fan-out hot path)', () => {
    const types = ['int4', 'int2', 'int8', 'int8', 'numeric', 'float8', 'bool', 'bool', 'jsonb', 'json', 'text', 'varchar', 'timestamptz', '_int4', 'uuid', 'text']
    const values = ['-5', '7', '9007199254740993', '42', 'NaN', '1.5e+30', 't', 'f', '{"a": [1, "x"]}', '[1, 2]', 'quote " and \\ and \u2028', 'é ü', '2026-01-02 03:04:05+00', '{1,2}', '0b7f1c6e-0000-4000-8000-000000000000', null]
    const rel: Relation = { oid: 1, schema: 'public', table: 't', replicaIdentity: 'd', columns: types.map((type, i) => ({ name: `c${i}`, typeOid: 0, type, key: i === 0 })) }
    const row = Object.fromEntries(values.map((v, i) => [`c${i}`, v]))
    expect(JSON.parse(rowJson(rel, row))).toEqual(jsonRow(rel, row))
    // A column missing from the row (unchanged TOAST value) is left out, as jsonRow does.
    const partial = { c0: '1' }
    expect(JSON.parse(rowJson(rel, partial))).toEqual(jsonRow(rel, partial))
    // Changing the writer's output breaks this test: it is not a tautology.
    expect(rowJson(rel, partial)).toBe('{"c0":1}')
  })
  it('builds unmasked WebSocket text frames of every length class', () => {
    for (const n of [0, 125, 126, 65535, 65536, 70000]) {
      const f = textFrame('x'.repeat(n))
      expect(f[0]).toBe(0x81)
      const len = f[1]! < 126 ? f[1]! : f[1] === 126 ? f.readUInt16BE(2) : f.readUInt32BE(6)
      const head = f[1]! < 126 ? 2 : f[1] === 126 ? 4 : 10
      expect(len).toBe(n)
      expect(f.length).toBe(head + n)
    }
    expect(textFrame('é').subarray(2).toString('utf8')).toBe('é')
    expect(textFrame('é')[1]).toBe(2)
  })
})

describe('presence', () => {
  it('tracks, updates and untracks with Phoenix diffs', () => {
    const p = new TopicPresence()
    const j = p.track('m1', 'alice', { s: 1 })
    expect(j?.joins.alice?.metas[0]).toMatchObject({ s: 1 })
    expect(p.track('m1', 'alice', { s: 1 })).toBeUndefined() // unchanged
    const u = p.track('m1', 'alice', { s: 2 })
    expect(u?.leaves.alice?.metas[0]).toMatchObject({ s: 1 })
    expect(p.state().alice?.metas).toHaveLength(1)
    expect(p.untrack('m1')?.leaves.alice?.metas[0]).toMatchObject({ s: 2 })
    expect(p.size).toBe(0)
  })
  it('authorizes private topics by the topics claim', () => {
    expect(topicAllowed({ role: 'a', exp: 1, topics: ['room:*'] }, 'room:1')).toBe(true)
    expect(topicAllowed({ role: 'a', exp: 1, topics: ['room:1'] }, 'room:2')).toBe(false)
    expect(topicAllowed({ role: 'a', exp: 1 }, 'room:1')).toBe(false)
  })
})

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeInt16BE(n)
  return b
}
function big(n: bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigInt64BE(n)
  return b
}
