import { describe, expect, it } from 'vitest'
import { FIRST_INSTANCE, isFirstInstance, nextInstanceName, reservedInstanceName } from '../../../src/daemon/instances.js'

describe('instance names never repeat a role word', () => {
  it('the first instance is pg1; replicas take the next free pgN', () => {
    expect(FIRST_INSTANCE).toBe('pg1')
    expect(nextInstanceName(['pg1'])).toBe('pg2')
    expect(nextInstanceName(['pg1', 'pg2', 'r1', 'pg4'])).toBe('pg3')
    // An older flock whose first instance is `primary`: pg1 stays reserved for first instances.
    expect(nextInstanceName(['primary'])).toBe('pg2')
    expect(isFirstInstance('primary') && isFirstInstance('pg1') && !isFirstInstance('pg2')).toBe(true)
  })

  it('role words (and pg1) are refused as replica names', () => {
    for (const n of ['primary', 'replica', 'fenced', 'standalone', 'pg1']) expect(reservedInstanceName(n), n).toBe(true)
    for (const n of ['pg2', 'r1', 'eu_west']) expect(reservedInstanceName(n), n).toBe(false)
  })
})
