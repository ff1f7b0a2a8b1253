import { describe, expect, it } from 'vitest'
import * as kernelErrors from '../../../src/kernel/errors.js'
import { errorCatalog, type ErrorDefinition } from '../../../src/errors/index.js'

describe('kernel error catalog', () => {
  const defs = Object.values(kernelErrors) as Array<ErrorDefinition<never>>

  it('registers every kernel error with a unique E_ code', () => {
    const catalog = new Set(errorCatalog().map((e) => e.code))
    for (const d of defs) {
      expect(d.code).toMatch(/^E_[A-Z_]+$/)
      expect(catalog.has(d.code)).toBe(true)
    }
    expect(new Set(defs.map((d) => d.code)).size).toBe(defs.length)
  })

  it('gives each error a hint that points somewhere', () => {
    const samples: Record<string, unknown> = {
      E_COMPONENT_CYCLE: { path: ['a', 'b', 'a'] },
      E_COMPONENT_MISSING_DEP: { component: 'a', dependency: 'b' },
      E_COMPONENT_DUPLICATE: { component: 'a' },
      E_COMPONENT_START_FAILED: { component: 'a', cause: 'x', reason: 'y' },
      E_COMPONENT_NOT_FOUND: { component: 'a' },
      E_EVENT_TYPE_CONFLICT: { type: 't' },
      E_TOKEN_NOT_FOUND: { id: 'abc' },
      E_TOKEN_STORE_MISMATCH: { tokenFile: '/s/admin.token', store: '/s/tokens.json' },
      E_AUDIT_UNAVAILABLE: { action: 'db.create', reason: 'EPERM' },
      E_KERNEL_START_IN_PROGRESS: { pid: 42, stateDir: '/s', seconds: 180 },
    }
    for (const d of defs) {
      const args = samples[d.code]
      expect(args, `sample args for ${d.code}`).toBeDefined()
      const err = d(args as never)
      expect(err.code).toBe(d.code)
      expect(err.hint, d.code).toBeTruthy()
    }
  })
})
