import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { allKeys, kindOf, schemaAt } from '../../../src/config/keys.js'
import { loadConfig } from '../../../src/config/load.js'
import { configReference, envVarFor } from '../../../src/config/reference.js'
import { defaultConfig } from '../../../src/config/schema.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const DOC = path.join(root, 'docs/configuration.md')
const START = /<!-- reference:start[^>]*-->\n/
const END = '<!-- reference:end -->'

describe('docs/configuration.md and templates/magflock.yaml', () => {
  it('embeds the reference generated from the schema (UPDATE_DOCS=1 regenerates it)', () => {
    const doc = readFileSync(DOC, 'utf8')
    const m = START.exec(doc)
    expect(m).not.toBeNull()
    const begin = m!.index + m![0].length
    const end = doc.indexOf(END)
    const current = doc.slice(begin, end)
    const wanted = configReference() + '\n'
    if (process.env.UPDATE_DOCS === '1' && current !== wanted) writeFileSync(DOC, doc.slice(0, begin) + wanted + doc.slice(end))
    else expect(current).toBe(wanted)
    for (const k of allKeys()) expect(wanted).toContain(`\`${k}\``)
  })

  it('names variables the way the loader maps them', async () => {
    for (const key of allKeys()) {
      if (key === 'postgres.settings') continue
      const c = await loadConfig({ cwd: '/nonexistent', environ: { [envVarFor(key)]: JSON.stringify(flatDefault(key)).replace(/^"|"$/g, '') } })
      expect(c.sourceOf(key)).toEqual({ layer: 'environment', variable: envVarFor(key) })
    }
  })

  it('ships a template that validates and equals the defaults', async () => {
    const c = await loadConfig({ cwd: '/nonexistent', environ: {}, overrides: { '/nonexistent/magflock.yaml': readFileSync(path.join(root, 'templates/magflock.yaml'), 'utf8') } })
    expect(c.config).toEqual(defaultConfig())
  })
})

function flatDefault(key: string): unknown {
  let cur: unknown = defaultConfig()
  for (const p of key.split('.')) cur = (cur as Record<string, unknown>)[p]
  // An unset optional key gets a valid value of its kind (a format-checked one, a sample).
  if (cur === undefined && key === 'api.listen') return '127.0.0.1:7543'
  return cur ?? (kindOf(schemaAt(key.split('.'))!) === 'number' ? 1 : 'x')
}
