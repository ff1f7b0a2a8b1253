import { describe, expect, it } from 'vitest'
import { healthHosts, healthStatus, parseLag, type Observed } from '../../../src/health/decide.js'

const primary: Observed = { role: 'primary', running: true, inRecovery: false, streaming: false, lagBytes: 0 }
const replica: Observed = { role: 'replica', running: true, inRecovery: true, streaming: true, lagBytes: 100 }
const catchingUp: Observed = { ...replica, streaming: false, lagBytes: 50 * 1024 * 1024 }
const down: Observed = { role: 'replica', running: false, inRecovery: null, streaming: false, lagBytes: null }
const fenced: Observed = { role: 'fenced', running: true, inRecovery: false, streaming: false, lagBytes: 0 }
/** A promoted standby the registry does not (yet) call primary: not a leader, not a replica. */
const unregistered: Observed = { role: 'replica', running: true, inRecovery: false, streaming: false, lagBytes: 0 }

describe('health endpoints (Patroni semantics)', () => {
  it.each([
    ['/primary', primary, 200], ['/primary', replica, 503], ['/primary', fenced, 503], ['/primary', unregistered, 503], ['/primary', down, 503],
    ['/', primary, 200], ['/read-write', primary, 200], ['/read-write', replica, 503], ['/master', primary, 200], ['/leader', replica, 503],
    ['/replica', replica, 200], ['/replica', primary, 503], ['/replica', down, 503], ['/replica', unregistered, 503],
    ['/read-only', primary, 200], ['/read-only', replica, 200], ['/read-only', fenced, 503], ['/read-only', down, 503],
    ['/health', primary, 200], ['/health', replica, 200], ['/health', down, 503],
    ['/liveness', down, 200],
    ['/readiness', primary, 200], ['/readiness', replica, 200], ['/readiness', catchingUp, 503], ['/readiness', down, 503],
    ['/nope', primary, 404],
  ] as const)('%s on %o → %i', (path, o, want) => {
    expect(healthStatus(path, o)).toBe(want)
  })

  it('/replica?lag= and /readiness?lag= compare the replay lag in bytes or human sizes', () => {
    expect(healthStatus('/replica', catchingUp, new URLSearchParams('lag=64MB'))).toBe(200)
    expect(healthStatus('/replica', catchingUp, new URLSearchParams('lag=16MB'))).toBe(503)
    expect(healthStatus('/replica', { ...replica, lagBytes: null }, new URLSearchParams('lag=1GB'))).toBe(503)
    expect(healthStatus('/readiness', replica, new URLSearchParams('lag=1kB'))).toBe(200)
    expect(healthStatus('/readiness', replica, new URLSearchParams('lag=10'))).toBe(503)
    expect(parseLag('1048576')).toBe(1048576)
    expect(parseLag('16kB')).toBe(16384)
    expect(parseLag('1GB')).toBe(1024 ** 3)
    expect(parseLag('lots')).toBeUndefined()
  })

  it('listens on health.host, and on a node also on its --listen address', () => {
    expect(healthHosts('127.0.0.1', undefined)).toEqual(['127.0.0.1'])
    expect(healthHosts('127.0.0.1', '10.0.0.2')).toEqual(['127.0.0.1', '10.0.0.2'])
    expect(healthHosts('10.0.0.2', '10.0.0.2')).toEqual(['10.0.0.2'])
    expect(healthHosts('0.0.0.0', '10.0.0.2')).toEqual(['0.0.0.0'])
    expect(healthHosts('::', '10.0.0.2')).toEqual(['::'])
  })
})
