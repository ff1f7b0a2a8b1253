import { describe, expect, it } from 'vitest'
import { defineRoute } from '../../../src/api/route.js'
import { eventPatternsFor, hasGrant, matchesEventPattern, mayReadEvent, operatorRole, routeAllowed, type Principal } from '../../../src/kernel/grants.js'
import { z } from 'zod'

const ext = (grants: string[]): Principal => ({ role: 'extension', tokenId: 't1', extension: 'x', grants })
const route = (id: string, extra: { extensions?: boolean } = {}) =>
  defineRoute({ id, method: 'GET', path: `/v1/${id}`, roles: ['admin', 'operator'], mutating: false, input: z.object({}), output: z.object({}), ...extra })

describe('grants', () => {
  it('matches event patterns: exact, prefix*, *', () => {
    expect(matchesEventPattern('backup.failed', 'backup.failed')).toBe(true)
    expect(matchesEventPattern('backup.failed', 'backup.failedx')).toBe(false)
    expect(matchesEventPattern('replication.*', 'replication.role')).toBe(true)
    expect(matchesEventPattern('replication.*', 'replica.added')).toBe(false)
    expect(matchesEventPattern('*', 'anything')).toBe(true)
  })

  it('hasGrant is exact except for event subscription globs', () => {
    const p = ext(['events:subscribe:backup.*', 'api:call:status', 'db:connect:app:ro'])
    expect(hasGrant(p, 'events:subscribe:backup.failed')).toBe(true)
    expect(hasGrant(p, 'events:subscribe:failover.completed')).toBe(false)
    expect(hasGrant(p, 'api:call:status')).toBe(true)
    expect(hasGrant(p, 'api:call:status.x')).toBe(false)
    expect(hasGrant(p, 'db:connect:app:rw')).toBe(false)
    expect(hasGrant(ext(['api:call:*']), 'api:call:status')).toBe(false)
  })

  it('event patterns: everything for admin/operator/viewer, nothing for ci, the grants of an extension', () => {
    for (const role of ['admin', 'operator', 'viewer'] as const) expect(eventPatternsFor({ role, tokenId: 't', grants: [] })).toEqual(['*'])
    expect(eventPatternsFor({ role: 'ci', tokenId: 't', grants: [] })).toEqual([])
    expect(eventPatternsFor(ext(['events:subscribe:config.*', 'state:dir']))).toEqual(['config.*'])
    expect(mayReadEvent(ext(['events:subscribe:config.*']), 'config.reloaded')).toBe(true)
    expect(mayReadEvent(ext(['events:subscribe:config.*']), 'api.denied')).toBe(false)
  })

  it('routes: roles for operator tokens; api:call grants for extensions, never sensitive routes', () => {
    expect(routeAllowed({ role: 'admin', tokenId: 't', grants: [] }, route('status'))).toBe(true)
    expect(routeAllowed({ role: 'viewer', tokenId: 't', grants: [] }, route('status'))).toBe(false)
    expect(routeAllowed(ext([]), route('status'))).toBe(false)
    expect(routeAllowed(ext(['api:call:status']), route('status'))).toBe(true)
    expect(routeAllowed(ext([]), route('events.stream', { extensions: true }))).toBe(true)
    for (const id of ['token.list', 'secrets.rotate', 'shutdown', 'db.migrate', 'db.url', 'audit.verify', 'logs', 'ext.install']) {
      expect(routeAllowed(ext([`api:call:${id}`]), route(id)), id).toBe(false)
    }
  })

  it('operatorRole refuses extension tokens', () => {
    expect(operatorRole({ role: 'ci' }, 'db.migrate')).toBe('ci')
    expect(() => operatorRole({ role: 'extension' }, 'db.migrate')).toThrow(/extension token may not call db.migrate/)
  })
})
