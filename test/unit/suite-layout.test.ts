import { readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import config from '../../vitest.config.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** Every test directory is in a vitest project: a folder left out runs in no suite at all. */
describe('suite layout', () => {
  it('every folder of test/ with *.test.ts files is included by a project', () => {
    const includes = (config.test?.projects ?? []).flatMap((p) => (typeof p === 'object' && p && 'test' in p ? (p.test?.include ?? []) : []))
    const covered = new Set(includes.flatMap((g) => {
      const m = /^test\/(?:\{([^}]+)\}|([^/*]+))\//.exec(g)
      return m ? (m[1] ?? m[2] ?? '').split(',') : []
    }))
    const dirs = readdirSync(path.join(root, 'test'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name !== 'helpers')
      .filter((d) => readdirSync(path.join(root, 'test', d.name), { recursive: true }).some((f) => String(f).endsWith('.test.ts')))
      .map((d) => d.name)
    expect(dirs.length).toBeGreaterThan(3)
    for (const d of dirs) expect(covered, `test/${d} is in no vitest project`).toContain(d)
  })
})
