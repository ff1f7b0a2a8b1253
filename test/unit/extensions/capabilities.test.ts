import { describe, expect, it } from 'vitest'
import { routeRefusal } from '../../../src/extensions/broker.js'
import { Manifest, configSchema, parseCapability } from '../../../src/extensions/manifest.js'

describe('parseCapability', () => {
  it.each([
    ['config:read', { kind: 'config:read' }],
    ['state:dir', { kind: 'state:dir' }],
    ['events:subscribe:replication.*', { kind: 'events:subscribe', pattern: 'replication.*' }],
    ['events:subscribe:backup.failed', { kind: 'events:subscribe', pattern: 'backup.failed' }],
    ['api:call:status', { kind: 'api:call', route: 'status' }],
    ['db:connect:app:ro', { kind: 'db:connect', database: 'app', mode: 'ro' }],
    ['hooks:backup.before:veto', { kind: 'hooks', point: 'backup.before', effect: 'veto' }],
  ])('accepts %s', (cap, want) => {
    expect(parseCapability(cap)).toEqual(want)
  })

  it.each([
    'api:call:secrets.rotate',
    'api:call:token.create',
    'api:call:ext.grant',
    'api:call:db.migrate',
    'api:call:db.url',
    'api:call:shutdown',
    'api:call:backup.rekey',
    'db:connect:app:admin',
    'db:connect:App:ro',
    'events:subscribe:repl*ication',
    'hooks:kernel.boot:observe',
    'root',
    '',
  ])('refuses %s with E_EXT_CAPABILITY_INVALID', (cap) => {
    expect(() => parseCapability(cap)).toThrow(expect.objectContaining({ code: 'E_EXT_CAPABILITY_INVALID' }))
  })

  it('refuses an api:call of a route that does not exist', () => {
    expect(() => parseCapability('api:call:nope', new Set(['status']))).toThrow(expect.objectContaining({ code: 'E_EXT_CAPABILITY_INVALID' }))
  })
})

describe('routeRefusal (the broker\'s route decision)', () => {
  const grants = ['api:call:status', 'config:read']
  it.each([
    ['status', undefined, undefined],
    ['backup.list', undefined, 'E_EXT_DENIED'],
    ['ext.self', undefined, undefined],
    ['ext.self.db', undefined, undefined],
    ['ext.install', undefined, 'E_EXT_ROUTE_FORBIDDEN'],
    ['token.list', undefined, 'E_EXT_ROUTE_FORBIDDEN'],
    ['secrets.rotate', undefined, 'E_EXT_ROUTE_FORBIDDEN'],
    ['events.stream', true, undefined],
  ])('%s → %s', (id, extensions, code) => {
    expect(routeRefusal('x', grants, { id, extensions: extensions as boolean | undefined })?.code).toBe(code)
  })

  it('a never-grantable route stays refused even when the grant is somehow present', () => {
    expect(routeRefusal('x', ['api:call:token.list'], { id: 'token.list' })?.code).toBe('E_EXT_ROUTE_FORBIDDEN')
  })
})

describe('Manifest and configSchema', () => {
  it('applies defaults and refuses unknown or mistyped settings', () => {
    const m = Manifest.parse({ name: 'w', version: '1.0.0', entry: ['node', './i.mjs'], config: { url: { type: 'string', required: true }, n: { type: 'number', default: 3 } } })
    expect(m.memoryMb).toBe(256)
    const s = configSchema(m)
    expect(s.parse({ url: 'http://x' })).toEqual({ url: 'http://x', n: 3 })
    expect(s.safeParse({}).success).toBe(false)
    expect(s.safeParse({ url: 'u', extra: 1 }).success).toBe(false)
    expect(s.safeParse({ url: 1 }).success).toBe(false)
  })

  it('refuses a manifest with an unknown field or a bad name', () => {
    expect(Manifest.safeParse({ name: 'w', version: '1.0.0', entry: ['x'], runAsRoot: true }).success).toBe(false)
    expect(Manifest.safeParse({ name: '../w', version: '1.0.0', entry: ['x'] }).success).toBe(false)
  })
})
