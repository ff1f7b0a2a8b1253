import { describe, expect, it } from 'vitest'
import * as clusterErrors from '../../../src/cluster/errors.js'
import { errorCatalog, type ErrorDefinition } from '../../../src/errors/index.js'

describe('cluster error catalog', () => {
  const defs = Object.values(clusterErrors) as Array<ErrorDefinition<never>>
  const samples: Record<string, unknown> = {
    E_FLOCK_STORE_UNAVAILABLE: { endpoints: 'http://10.0.0.1:2379', reason: 'deadline exceeded' },
    E_FLOCK_STORE_CONFLICT: { key: '/magflock/f/topology', attempts: 20 },
    E_FLOCK_STORE_CORRUPT: { key: '/magflock/f/topology', reason: 'bad' },
    E_ETCD_ENDPOINT_INVALID: { endpoint: 'x' },
    E_NODE_FLAGS_INCOMPLETE: { missing: '--listen' },
    E_NODE_NAME_INVALID: { name: 'A!' },
    E_NODE_LISTEN_INVALID: { listen: '127.0.0.1' },
    E_NODE_SETTINGS_CONFLICT: { key: 'node', current: 'a', asked: 'b' },
    E_NODE_KERNEL_RUNNING: {},
    E_NODE_SECRETS_MISSING: { names: ['postgres.superuser.password'] },
    E_NODE_FLOCK_LED_ELSEWHERE: { leader: 'a' },
    E_NODE_NO_LEADER: { waitedS: 120 },
    E_NODE_LEASE_MISMATCH: { node: 'c', ttlMs: 2500, marginMs: 1000, other: 'a', otherTtlMs: 10000, otherMarginMs: 1000 },
    E_NODE_SWITCHOVER_TARGET: { to: 'b_1', reason: 'it is the primary already' },
    E_NODE_SWITCHOVER_FAILED: { to: 'b_1', reason: 'no result' },
    E_NODE_REPLICA_ADD: { node: 'b' },
    E_REPLICA_NODE_ONE_HOST: { node: 'b' },
    E_NODE_INVITE_NOT_A_NODE: {},
    E_NODE_INVITE_EXISTS: { node: 'b' },
    E_NODE_INVITE_SAN_INVALID: { san: '127.0.0.1' },
    E_NODE_INVITE_NO_CA: { reason: 'no key' },
    E_NODE_INVITE_OUT_EXISTS: { file: '/tmp/b.join' },
    E_NODE_BUNDLE_UNREADABLE: { file: '/tmp/b.join', reason: 'no such file' },
    E_NODE_BUNDLE_CORRUPT: { reason: 'cut short' },
    E_NODE_BUNDLE_CODE_MISSING: {},
    E_NODE_BUNDLE_CODE_WRONG: {},
    E_NODE_BUNDLE_EXPIRED: { expiresAt: '2026-01-01T00:00:00.000Z' },
    E_NODE_BUNDLE_WRONG_NODE: { bundle: 'b', asked: 'c' },
    E_NODE_BUNDLE_WRONG_FLOCK: { bundle: 'prod', config: 'dev' },
    E_NODE_BUNDLE_LISTEN: { listen: '10.0.0.9', sans: ['b', '10.0.0.2'] },
    E_NODE_BUNDLE_CONFLICT: { names: ['postgres.superuser.password'] },
    E_NODE_BUNDLE_KIND: { node: 'b', renew: true },
    E_NODE_RENEW_UNKNOWN: { node: 'c' },
    E_NODE_RENEW_SELF: { node: 'a' },
    E_NODE_RENEW_NOT_JOINED: { reason: 'it has no node settings' },
  }

  it('registers every cluster error with a unique E_ code, a message and a hint', () => {
    const catalog = new Set(errorCatalog().map((e) => e.code))
    for (const d of defs) {
      expect(catalog.has(d.code)).toBe(true)
      const args = samples[d.code]
      expect(args, `sample args for ${d.code}`).toBeDefined()
      const err = d(args as never)
      expect(err.message.length).toBeGreaterThan(10)
      expect(err.hint, d.code).toBeTruthy()
    }
  })
})
