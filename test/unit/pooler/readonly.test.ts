import { describe, expect, it } from 'vitest'
import { poolerLayout, renderIni } from '../../../src/pooler/ini.js'
import { planReadOnly, roLink, routeConnect, type ReadOnlyCandidate } from '../../../src/pooler/readonly.js'
import { PoolerConfig } from '../../../src/config/schema.js'

const layout = poolerLayout('/state')
const rep = (name: string, o: Partial<ReadOnlyCandidate> = {}): ReadOnlyCandidate => ({ name, host: '127.0.0.1', port: 5500 + Number(name.slice(1)), socketDir: `/state/instances/${name}`, state: 'streaming', lagBytes: 0, ...o })
const opts = { maxLagBytes: 1024, layout, vport: 6432 }

describe('read-only pool plan', () => {
  it('serves every streaming replica within the lag bound through linked Unix sockets, in name order', () => {
    const p = planReadOnly([rep('r2'), rep('r1', { lagBytes: 1024 })], opts)
    expect(p.serving).toEqual(['r1', 'r2'])
    expect(p.excluded).toEqual([])
    expect(p.route).toEqual({ kind: 'sockets', dirs: ['/state/pooler/ro/r1', '/state/pooler/ro/r2'], port: 6432 })
    expect(roLink(layout, 'r1', 6432).link).toBe('/state/pooler/ro/r1/.s.PGSQL.6432')
    expect(routeConnect(p.route)).toBe('host=/state/pooler/ro/r1,/state/pooler/ro/r2 port=6432')
  })

  it('leaves out a lagging, a catching-up and an unconnected replica, saying why', () => {
    const p = planReadOnly([rep('r1', { lagBytes: 1025 }), rep('r2', { state: 'catchup' }), rep('r3', { state: undefined, lagBytes: undefined }), rep('r4')], opts)
    expect(p.serving).toEqual(['r4'])
    expect(p.excluded.map((e) => e.name)).toEqual(['r1', 'r2', 'r3'])
    expect(p.excluded[0]!.reason).toMatch(/replay lag 1025 bytes > 1024/)
    expect(p.excluded[1]!.reason).toMatch(/not streaming \(catchup\)/)
    expect(p.excluded[2]!.reason).toMatch(/not connected/)
  })

  it('falls back to the primary, read-only, when no replica qualifies', () => {
    const p = planReadOnly([rep('r1', { lagBytes: 5000 })], opts)
    expect(p.route).toEqual({ kind: 'primary' })
    const ini = renderIni({ pooler: PoolerConfig.parse({}), primary: { host: '127.0.0.1', port: 5433, socketDir: '/state/instances/pg1' }, readOnly: { databases: ['app'], connect: routeConnect(p.route) }, adminUser: 'postgres', layout })
    expect(ini).toContain("app.ro = host=/state/instances/pg1 port=5433 connect_query='SET default_transaction_read_only = on' dbname=app")
    expect(ini).toContain('* = host=/state/instances/pg1 port=5433')
  })

  it('replicas on other hosts on one port: a TCP host list', () => {
    const p = planReadOnly([rep('r1', { host: '10.0.0.2', port: 5432 }), rep('r2', { host: '10.0.0.3', port: 5432 })], opts)
    expect(p.route).toEqual({ kind: 'tcp', hosts: ['10.0.0.2', '10.0.0.3'], port: 5432 })
  })

  it('no socket and different ports: the least lagged replica alone, with a note', () => {
    const p = planReadOnly([rep('r1', { socketDir: '', lagBytes: 10 }), rep('r2', { socketDir: '', lagBytes: 0 })], opts)
    expect(p.serving).toEqual(['r2'])
    expect(p.route).toEqual({ kind: 'tcp', hosts: ['127.0.0.1'], port: 5502 })
    expect(p.note).toMatch(/round robin needs/)
  })

  it('a socket link longer than sun_path is not used', () => {
    const deep = poolerLayout('/' + 'x'.repeat(100))
    const p = planReadOnly([rep('r1'), rep('r2')], { ...opts, layout: deep })
    expect(p.route.kind).toBe('tcp')
  })

  it('renders only database names PgBouncer takes unquoted', () => {
    const ini = renderIni({ pooler: PoolerConfig.parse({}), primary: { host: '127.0.0.1', port: 5433 }, readOnly: { databases: ['app', 'we ird', 'x"y'], connect: 'host=/a port=1' }, adminUser: 'postgres', layout })
    expect(ini).toContain('app.ro = host=/a port=1 dbname=app')
    expect(ini).not.toContain('we ird')
    expect(ini).not.toContain('x"y')
  })
})
