import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = path.resolve(import.meta.dirname, '../../../src')

/**
 * A pg Client (or Pool) whose server goes away while it is idle (a postmaster killed by a
 * failover's fencing, a backend terminated) emits 'error'. Without a listener that is an
 * uncaught exception: in the kernel, the whole daemon exits. Every client the product creates
 * gets a listener right where it is made, so the next query rejects instead (the caller
 * handles that as any failed query). This scans src/ for `new pg.Client(` / `new pg.Pool(`.
 */
describe('every pg client in src/ listens for errors', () => {
  const files = readdirSync(SRC, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name))
  const sites: Array<{ where: string; id: string; window: string }> = []
  for (const file of files) {
    const lines = readFileSync(file, 'utf8').split('\n')
    lines.forEach((line, i) => {
      const m = /(\w+)\s*=\s*new pg\.(?:Client|Pool)\(/.exec(line)
      if (m) sites.push({ where: `${path.relative(SRC, file)}:${i + 1}`, id: m[1]!, window: lines.slice(i, i + 6).join('\n') })
    })
  }

  it('finds the clients it checks', () => {
    // The scan itself must keep working: there are many (backups, replication, realtime, ...).
    expect(sites.length).toBeGreaterThan(15)
  })

  it('has an error listener on each, within a few lines of its creation', () => {
    const missing = sites.filter((s) => !new RegExp(`\\b${s.id}\\.on\\('error'`).test(s.window)).map((s) => s.where)
    expect(missing).toEqual([])
  })
})
