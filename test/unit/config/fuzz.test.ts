import path from 'node:path'
import { stringify } from 'yaml'
import { describe, expect, it } from 'vitest'
import type { ConfigProblem } from '../../../src/config/errors.js'
import { allKeys } from '../../../src/config/keys.js'
import { loadConfig } from '../../../src/config/load.js'
import { isMagflockError } from '../../../src/errors/index.js'

/**
 * Fuzzes the loader with malformed YAML and wrong types: every input must either load or
 * fail with E_CONFIG_SYNTAX (file, line, column) or E_CONFIG_INVALID (every problem with a
 * path, a problem text and a source) — never another exception, never a stack trace.
 * Seeded, so a failure reproduces.
 */
const cwd = '/nonexistent-project'
const file = path.join(cwd, 'magflock.yaml')

function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const VALID = `# a realistic file
flock: prod-eu
postgres:
  port: 5433
  database: app
  settings:
    work_mem: 16MB
    max_connections: 80
kernel:
  logLevel: info
  restart:
    maxRestarts: 5
metrics:
  enabled: true
  port: 9187
backup:
  compression: zstd
  schedule: "0 3 * * *"
  encryptionKey: secret:backup-kek
replication:
  failover:
    graceSeconds: 2
`
const NASTY = [':', '{', '}', '[', ']', '-', '&', '*', '!', '|', '>', "'", '"', '%', '@', '`', '\t', '\n', '  ', '#', ',', '?', '\u0000', '\uFEFF', '!!binary', '&a', '*a', '<<: *a', '---', '...', '\\', 'é']
const WRONG: unknown[] = ['abc', -1, 0, 70000, 1e300, 3.5, true, false, [], [1, 2], {}, { x: 1 }, '', 'x'.repeat(500), 'secret:x', '__proto__', '1e3', 'null']

async function check(text: string, environ: NodeJS.ProcessEnv = {}): Promise<{ ok: true } | { ok: false; code: string; problems: ConfigProblem[] }> {
  try {
    await loadConfig({ cwd, environ, overrides: { [file]: text } })
    return { ok: true }
  } catch (err) {
    if (!isMagflockError(err)) throw new Error(`non-Magflock error for input ${JSON.stringify(text).slice(0, 200)}: ${String(err)}`, { cause: err })
    expect(['E_CONFIG_SYNTAX', 'E_CONFIG_INVALID']).toContain(err.code)
    expect(err.message.length).toBeGreaterThan(10)
    expect(err.message).not.toMatch(/\n\s+at .+:\d+:\d+/) // no stack frames
    expect(err.hint).toBeTruthy()
    if (err.code === 'E_CONFIG_SYNTAX') expect(err.message).toMatch(/magflock\.yaml at line \d+, column \d+: \S/)
    const problems = (err.details?.problems ?? []) as ConfigProblem[]
    if (err.code === 'E_CONFIG_INVALID') {
      expect(problems.length).toBeGreaterThan(0)
      for (const p of problems) {
        expect(p.path).toBeTruthy()
        expect(p.problem).toMatch(/^(expected .+, got .+|unknown key.*)$/s)
        expect(p.where).toMatch(/^(magflock\.yaml:\d+|MAGFLOCK_\w+|default|--.+)$/)
      }
    }
    return { ok: false, code: err.code, problems }
  }
}

describe('config loader fuzz', () => {
  it('handles 400 randomly mutated YAML files with a clear error or a valid config', async () => {
    const r = rng(42)
    const codes = new Map<string, number>()
    for (let i = 0; i < 400; i++) {
      let text = VALID
      const edits = 1 + Math.floor(r() * 4)
      for (let e = 0; e < edits; e++) {
        const pos = Math.floor(r() * text.length)
        const op = r()
        const tok = NASTY[Math.floor(r() * NASTY.length)]!
        if (op < 0.4) text = text.slice(0, pos) + tok + text.slice(pos)
        else if (op < 0.7) text = text.slice(0, pos) + tok + text.slice(pos + 1 + Math.floor(r() * 5))
        else text = text.slice(0, pos) + text.slice(pos + 1 + Math.floor(r() * 10))
      }
      const res = await check(text)
      const k = res.ok ? 'ok' : res.code
      codes.set(k, (codes.get(k) ?? 0) + 1)
    }
    // The generator must actually exercise both error kinds.
    expect(codes.get('E_CONFIG_SYNTAX') ?? 0).toBeGreaterThan(20)
    expect(codes.get('E_CONFIG_INVALID') ?? 0).toBeGreaterThan(20)
  })

  it('reports a wrong-typed value at its own key for every key and 18 kinds of wrong value', async () => {
    const keys = allKeys()
    let failures = 0
    for (const key of keys) {
      for (const value of WRONG) {
        const obj: Record<string, unknown> = {}
        let cur = obj
        const parts = key.split('.')
        for (const p of parts.slice(0, -1)) cur = (cur[p] = {}) as Record<string, unknown>
        cur[parts[parts.length - 1]!] = value
        const res = await check(stringify(obj))
        if (res.ok) continue
        failures++
        // The problem names this key (or, for a mapping value, a key below it).
        expect(res.problems.some((p) => p.path === key || p.path.startsWith(key + '.') || key.startsWith(p.path + '.'))).toBe(true)
      }
    }
    expect(failures).toBeGreaterThan(keys.length * 8)
  })

  it('handles 200 random MAGFLOCK_* variables', async () => {
    const r = rng(7)
    const keys = allKeys()
    const outcomes = { ok: 0, refused: 0, mistyped: 0 }
    for (let i = 0; i < 200; i++) {
      const key = keys[Math.floor(r() * keys.length)]!
      const mistyped = r() < 0.2
      const name = 'MAGFLOCK_' + key.split('.').map((s) => s.replace(/([A-Z])/g, '_$1').toUpperCase()).join('__') + (mistyped ? 'X' : '')
      const v = WRONG[Math.floor(r() * WRONG.length)]
      const res = await check('', { [name]: typeof v === 'string' ? v : JSON.stringify(v) })
      if (mistyped && name.includes('__')) {
        // A mistyped config variable is never ignored, whatever its value.
        expect(res.ok, name).toBe(false)
        outcomes.mistyped++
      }
      if (res.ok) {
        outcomes.ok++
        continue
      }
      outcomes.refused++
      expect(res.code).toBe('E_CONFIG_INVALID')
      // The problem names the variable it came from.
      expect(res.problems.some((p) => p.where === name)).toBe(true)
    }
    // The generator must exercise accepted values, refused values and mistyped names.
    expect(outcomes.ok).toBeGreaterThan(10)
    expect(outcomes.refused).toBeGreaterThan(50)
    expect(outcomes.mistyped).toBeGreaterThan(10)
  })

  it('survives hostile documents: alias bombs, deep nesting, huge keys, binary, multiple documents', async () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`)].join('\n')
    const inputs: Array<[string, 'ok' | 'E_CONFIG_SYNTAX' | 'E_CONFIG_INVALID']> = [
      [bomb, 'E_CONFIG_SYNTAX'],
      ['postgres:\n' + '  '.repeat(1) + 'settings: ' + '['.repeat(500) + ']'.repeat(500), 'E_CONFIG_INVALID'],
      ['x'.repeat(100_000) + ': 1', 'E_CONFIG_SYNTAX'],
      ['flock: !!binary aGVsbG8=', 'E_CONFIG_SYNTAX'],
      ['flock: a\n---\nflock: b\n', 'E_CONFIG_SYNTAX'],
      ['__proto__:\n  polluted: true\n', 'E_CONFIG_INVALID'],
      ['constructor: {prototype: {x: 1}}', 'E_CONFIG_INVALID'],
      ['? [complex, key]\n: value', 'E_CONFIG_SYNTAX'],
      ['\uFEFFflock: bom', 'ok'],
      ['postgres: !!set {a, b}', 'E_CONFIG_SYNTAX'],
      ['postgres: !custom {port: 1}', 'E_CONFIG_SYNTAX'],
      ['"unterminated', 'E_CONFIG_SYNTAX'],
      ['\t\tflock: tabs', 'E_CONFIG_SYNTAX'],
      ['x: ' + '['.repeat(5000) + ']'.repeat(5000), 'E_CONFIG_SYNTAX'],
    ]
    for (const [text, expected] of inputs) {
      const res = await check(text)
      expect(res.ok ? 'ok' : res.code, JSON.stringify(text).slice(0, 60)).toBe(expected)
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
