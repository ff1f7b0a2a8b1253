import { describe, expect, it } from 'vitest'
import { isMagflockError } from '../../../src/errors/index.js'
import { bootOrder, shutdownOrder } from '../../../src/kernel/graph.js'

function caught(fn: () => unknown): { code: string; message: string } {
  try {
    fn()
  } catch (err) {
    if (isMagflockError(err)) return { code: err.code, message: err.message }
    throw err
  }
  throw new Error('expected an error')
}

describe('bootOrder', () => {
  it('starts dependencies before their dependents', () => {
    const order = bootOrder([
      { name: 'metrics', dependsOn: ['postgres'] },
      { name: 'postgres', dependsOn: [] },
      { name: 'failover-monitor', dependsOn: ['postgres', 'metrics'] },
    ])
    expect(order).toEqual(['postgres', 'metrics', 'failover-monitor'])
  })

  it('breaks ties by name, whatever the registration order', () => {
    const defs = [
      { name: 'zeta', dependsOn: [] },
      { name: 'alpha', dependsOn: [] },
      { name: 'mid', dependsOn: ['zeta'] },
      { name: 'beta', dependsOn: ['alpha'] },
    ]
    const expected = ['alpha', 'beta', 'zeta', 'mid']
    expect(bootOrder(defs)).toEqual(expected)
    expect(bootOrder([...defs].reverse())).toEqual(expected)
    expect(shutdownOrder(defs)).toEqual([...expected].reverse())
  })

  it('refuses a cycle with E_COMPONENT_CYCLE naming the path', () => {
    const e = caught(() =>
      bootOrder([
        { name: 'a', dependsOn: ['b'] },
        { name: 'b', dependsOn: ['c'] },
        { name: 'c', dependsOn: ['a'] },
        { name: 'd', dependsOn: [] },
      ]),
    )
    expect(e.code).toBe('E_COMPONENT_CYCLE')
    expect(e.message).toContain('a → b → c → a')
  })

  it('names only the cycle, not the components that merely depend on it', () => {
    const e = caught(() =>
      bootOrder([
        { name: 'api', dependsOn: ['x'] },
        { name: 'x', dependsOn: ['y'] },
        { name: 'y', dependsOn: ['x'] },
      ]),
    )
    expect(e.code).toBe('E_COMPONENT_CYCLE')
    expect(e.message).toContain('x → y → x')
    expect(e.message).not.toContain('api')
  })

  it('refuses a self-dependency as a cycle', () => {
    const e = caught(() => bootOrder([{ name: 'a', dependsOn: ['a'] }]))
    expect(e.code).toBe('E_COMPONENT_CYCLE')
    expect(e.message).toContain('a → a')
  })

  it('refuses a missing dependency with E_COMPONENT_MISSING_DEP naming both', () => {
    const e = caught(() => bootOrder([{ name: 'metrics', dependsOn: ['postgres'] }]))
    expect(e.code).toBe('E_COMPONENT_MISSING_DEP')
    expect(e.message).toContain('"metrics"')
    expect(e.message).toContain('"postgres"')
  })

  it('refuses a duplicate name with E_COMPONENT_DUPLICATE', () => {
    const e = caught(() =>
      bootOrder([
        { name: 'a', dependsOn: [] },
        { name: 'a', dependsOn: [] },
      ]),
    )
    expect(e.code).toBe('E_COMPONENT_DUPLICATE')
  })
})
