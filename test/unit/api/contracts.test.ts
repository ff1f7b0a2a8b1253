import { readdirSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { describe, expect, it } from 'vitest'
import type { RouteDef } from '../../../src/api/route.js'

/**
 * The control-API contracts (src/api/*.ts) as data: method, path, roles, mutating, streaming
 * and the JSON Schema of request and response. Committed as contracts.snapshot.json, so a
 * contract change shows in review as a diff of that file. After an intended change:
 *   npx vitest run test/unit/api/contracts.test.ts -u
 */
const API_DIR = path.resolve(import.meta.dirname, '../../../src/api')

function isRoute(v: unknown): v is RouteDef {
  const r = v as Partial<RouteDef> | null
  return !!r && typeof r === 'object' && typeof r.id === 'string' && typeof r.path === 'string' && typeof r.method === 'string' && Array.isArray(r.roles) && r.input instanceof z.ZodType && r.output instanceof z.ZodType
}

async function contracts(): Promise<unknown[]> {
  const routes: RouteDef[] = []
  for (const f of readdirSync(API_DIR).filter((n) => n.endsWith('.ts')).sort()) {
    const mod = (await import(path.join(API_DIR, f))) as Record<string, unknown>
    for (const v of Object.values(mod)) if (isRoute(v)) routes.push(v)
  }
  return routes
    .sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method))
    .map((r) => ({
      id: r.id,
      method: r.method,
      path: r.path,
      roles: [...r.roles],
      mutating: r.mutating,
      streaming: r.streaming ?? false,
      request: z.toJSONSchema(r.input, { io: 'input', unrepresentable: 'any' }),
      response: z.toJSONSchema(r.output, { io: 'output', unrepresentable: 'any' }),
    }))
}

describe('control-API contracts (src/api)', () => {
  it('match the committed snapshot (contracts.snapshot.json)', async () => {
    const c = await contracts()
    expect(c.length).toBeGreaterThan(30)
    await expect(JSON.stringify(c, null, 2) + '\n').toMatchFileSnapshot('./contracts.snapshot.json')
  })

  it('declares each route once (no two contracts on the same method and path)', async () => {
    const keys = (await contracts()).map((r) => `${(r as RouteDef).method} ${(r as RouteDef).path}`)
    expect(keys.length).toBe(new Set(keys).size)
  })
})
