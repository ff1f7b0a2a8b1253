import { beforeAll, describe, expect, it } from 'vitest'

// Fixture for test/unit/cli/summary-reporter.test.ts (not part of the suite: *.fixture.ts).
describe('plain', () => {
  it('passes', () => expect(1).toBe(1))
  it.skip('is skipped', () => expect(1).toBe(1))
  it.todo('is todo')
  it('fails', () => expect(1).toBe(2))
})
describe('a failing beforeAll', () => {
  beforeAll(() => {
    throw new Error('hook failed')
  })
  it('does not run 1', () => expect(1).toBe(1))
  it('does not run 2', () => expect(1).toBe(1))
})
