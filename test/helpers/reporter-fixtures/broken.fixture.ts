import { expect, it } from 'vitest'

// Fixture: a file that fails to collect (a top-level error before any test is defined).
throw new Error('this file fails to collect')
it('is never collected', () => expect(1).toBe(1))
