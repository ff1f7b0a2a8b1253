import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { cruise, type IViolation } from 'dependency-cruiser'
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options'
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(import.meta.dirname, '../../..')

function describeViolation(v: IViolation): string {
  const cycle = v.cycle?.length ? ` (cycle: ${v.from} → ${v.cycle.map((c) => c.name).join(' → ')})` : ''
  return `${v.rule.name}: ${v.from} → ${v.to}${cycle}`
}

async function violations(): Promise<string[]> {
  const options = await extractDepcruiseOptions(path.join(ROOT, '.dependency-cruiser.mjs'))
  const tsConfig = extractTSConfig(path.join(ROOT, 'tsconfig.json'))
  const prev = process.cwd()
  process.chdir(ROOT)
  try {
    const res = await cruise(['src'], options, undefined, { tsConfig })
    if (typeof res.output === 'string') throw new Error('dependency-cruiser returned text, expected a result object')
    return res.output.summary.violations.map(describeViolation)
  } finally {
    process.chdir(prev)
  }
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sourceFiles(p) : /\.tsx?$/.test(e.name) ? [p] : []
  })
}

describe('src/ dependency rule (.dependency-cruiser.mjs, docs/architecture.md "Where things go")', () => {
  it('has no import cycle and no import from a lower layer to a higher one', async () => {
    expect(await violations()).toEqual([])
  }, 60_000)

  it('reaches the running kernel without casts (no `as …Services`)', () => {
    const casts = sourceFiles(path.join(ROOT, 'src')).flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .map((line, i) => ({ line, at: `${path.relative(ROOT, f)}:${i + 1}` }))
        .filter((l) => /\bas\s+(unknown\s+as\s+)?\w*Services\b/.test(l.line))
        .map((l) => l.at),
    )
    expect(casts).toEqual([])
  })

  it('starts and stops Postgres only through the control adapter (src/postgres/control.ts)', () => {
    const direct = sourceFiles(path.join(ROOT, 'src'))
      .filter((f) => !f.endsWith(path.join('postgres', 'control.ts')))
      .filter((f) => /tool\(\s*'(pg_ctl|postgres)'\s*\)/.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(ROOT, f))
    expect(direct).toEqual([])
  })
})
