import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MAX_CONFIG_BYTES, loadConfig } from '../../../src/config/load.js'
import { CONFIG_BAD_ENV, CONFIG_INVALID, CONFIG_SYNTAX, CONFIG_TOO_LARGE, type ConfigProblem } from '../../../src/config/errors.js'
import { isMagflockError, type MagflockError } from '../../../src/errors/index.js'
import { tempDir } from '../../helpers/tmp.js'

let dir: string
let cleanup: () => void
beforeEach(() => {
  const t = tempDir('mf-cfg-')
  dir = t.dir
  cleanup = t.cleanup
})
afterEach(() => cleanup())

const write = (name: string, text: string) => writeFileSync(path.join(dir, name), text)

async function fails(p: Promise<unknown>): Promise<MagflockError> {
  try {
    await p
  } catch (err) {
    if (isMagflockError(err)) return err
    throw err
  }
  throw new Error('expected a MagflockError')
}
const problemsOf = (e: MagflockError) => (e.details?.problems ?? []) as ConfigProblem[]

describe('loadConfig layering', () => {
  it('returns the defaults when there is no magflock.yaml', async () => {
    const c = await loadConfig({ cwd: dir, environ: {} })
    expect(c.config.postgres.port).toBe(5433)
    expect(c.env).toBe('development')
    expect(c.files).toEqual([])
    expect(c.sourceOf('postgres.port')).toEqual({ layer: 'default' })
  })

  it('applies defaults < magflock.yaml < magflock.<env>.yaml < MAGFLOCK_* < flags', async () => {
    write('magflock.yaml', 'postgres:\n  port: 6000\n  database: app\nmetrics:\n  port: 9300\nkernel:\n  logLevel: debug\n')
    write('magflock.production.yaml', '# production overlay\npostgres:\n  port: 6001\nmetrics:\n  port: 9301\n')
    const c = await loadConfig({
      cwd: dir,
      env: 'production',
      environ: { MAGFLOCK_METRICS__PORT: '9400', MAGFLOCK_KERNEL__LOG_LEVEL: 'warn' },
      flags: { 'kernel.logLevel': 'error' },
    })
    expect(c.config.postgres.database).toBe('app') // base file
    expect(c.config.postgres.port).toBe(6001) // env file over base
    expect(c.config.metrics.port).toBe(9400) // variable over env file
    expect(c.config.kernel.logLevel).toBe('error') // flag over variable
    expect(c.config.migrations.dir).toBe('./migrations') // default
    expect(c.files).toEqual([path.join(dir, 'magflock.yaml'), path.join(dir, 'magflock.production.yaml')])
  })

  it('takes the env from MAGFLOCK_ENV when --env is not given, and --env wins over it', async () => {
    write('magflock.staging.yaml', 'postgres:\n  port: 7000\n')
    write('magflock.production.yaml', 'postgres:\n  port: 7001\n')
    expect((await loadConfig({ cwd: dir, environ: { MAGFLOCK_ENV: 'staging' } })).config.postgres.port).toBe(7000)
    const c = await loadConfig({ cwd: dir, env: 'production', environ: { MAGFLOCK_ENV: 'staging' } })
    expect(c.env).toBe('production')
    expect(c.config.postgres.port).toBe(7001)
  })

  it('merges mappings key by key and treats an empty value as unset', async () => {
    write('magflock.yaml', 'postgres:\n  settings:\n    work_mem: 4MB\n    max_connections: 50\n  binDir:\n')
    write('magflock.development.yaml', 'postgres:\n  settings:\n    work_mem: 8MB\n')
    const c = await loadConfig({ cwd: dir, environ: {} })
    expect(c.config.postgres.settings).toEqual({ work_mem: '8MB', max_connections: 50 })
    expect(c.config.postgres.binDir).toBeUndefined()
  })

  it('rejects a bad env name with E_CONFIG_BAD_ENV', async () => {
    const e = await fails(loadConfig({ cwd: dir, env: '../etc', environ: {} }))
    expect(e.code).toBe(CONFIG_BAD_ENV.code)
  })
})

describe('MAGFLOCK_* variable mapping', () => {
  it('maps double underscores to nesting and converts to the key type', async () => {
    const c = await loadConfig({
      cwd: dir,
      environ: {
        MAGFLOCK_POSTGRES__PORT: '5999',
        MAGFLOCK_METRICS__ENABLED: 'false',
        MAGFLOCK_REPLICATION__FAILOVER__GRACE_SECONDS: '2.5',
        MAGFLOCK_KERNEL__RESTART__MAX_RESTARTS: '9',
        MAGFLOCK_POSTGRES__SETTINGS__WORK_MEM: '16MB',
        MAGFLOCK_POSTGRES__SETTINGS__MAX_CONNECTIONS: '40',
        MAGFLOCK_FLOCK: 'blue',
      },
    })
    expect(c.config.postgres.port).toBe(5999)
    expect(c.config.metrics.enabled).toBe(false)
    expect(c.config.replication.failover.graceSeconds).toBe(2.5)
    expect(c.config.kernel.restart.maxRestarts).toBe(9)
    expect(c.config.postgres.settings).toEqual({ work_mem: '16MB', max_connections: 40 })
    expect(c.config.flock).toBe('blue')
    expect(c.sourceOf('postgres.port')).toEqual({ layer: 'environment', variable: 'MAGFLOCK_POSTGRES__PORT' })
  })

  it('ignores MAGFLOCK_* variables that are not config (ENV, STATE_DIR, TOKEN, MASTER_KEY, …)', async () => {
    const c = await loadConfig({
      cwd: dir,
      environ: { MAGFLOCK_STATE_DIR: '/x', MAGFLOCK_TOKEN: 't', MAGFLOCK_MASTER_KEY: 'k', MAGFLOCK_SOMETHING: 'y', MAGFLOCK_TEST_PG_BINDIR: '/b' },
    })
    expect(c.config.postgres.port).toBe(5433)
  })

  it('reports a mistyped variable as an unknown key with a suggestion', async () => {
    const e = await fails(loadConfig({ cwd: dir, environ: { MAGFLOCK_POSTGRES__PROT: '1' } }))
    expect(e.code).toBe(CONFIG_INVALID.code)
    expect(problemsOf(e)[0]).toMatchObject({ where: 'MAGFLOCK_POSTGRES__PROT', suggestion: 'postgres.port' })
  })

  it('reports a bad variable value naming the variable', async () => {
    const e = await fails(loadConfig({ cwd: dir, environ: { MAGFLOCK_POSTGRES__PORT: 'abc' } }))
    expect(e.message).toContain('postgres.port: expected an integer 1–65535, got "abc" (MAGFLOCK_POSTGRES__PORT)')
  })
})

describe('config errors', () => {
  it('names key, value, expectation and file:line for a wrong type in the env overlay', async () => {
    write('magflock.yaml', 'postgres:\n  port: 6000\n')
    write('magflock.production.yaml', '# a\n# b\n# c\n# d\n\npostgres:\n  port: abc\n')
    const e = await fails(loadConfig({ cwd: dir, env: 'production', environ: {} }))
    expect(e.code).toBe('E_CONFIG_INVALID')
    expect(e.errorClass).toBe('invalid_argument')
    expect(e.message).toContain('postgres.port: expected an integer 1–65535, got "abc" (magflock.production.yaml:7)')
    expect(problemsOf(e)).toEqual([
      { path: 'postgres.port', problem: 'expected an integer 1–65535, got "abc"', where: 'magflock.production.yaml:7' },
    ])
  })

  it('reports out-of-range numbers, bad enums and regex mismatches', async () => {
    write('magflock.yaml', 'flock: Bad_Name\nmetrics:\n  port: 70000\nkernel:\n  logLevel: loud\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    const ps = problemsOf(e)
    expect(ps.map((p) => p.path).sort()).toEqual(['flock', 'kernel.logLevel', 'metrics.port'])
    expect(ps.find((p) => p.path === 'kernel.logLevel')!.problem).toBe('expected one of trace, debug, info, warn, error, got "loud"')
    expect(ps.find((p) => p.path === 'metrics.port')!.where).toBe('magflock.yaml:3')
    expect(ps.find((p) => p.path === 'flock')!.problem).toMatch(/^expected a string matching/)
  })

  it('reports unknown keys with "did you mean" and their line', async () => {
    write('magflock.yaml', 'postgres:\n  prot: 5433\nmetrix:\n  port: 1\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    const ps = problemsOf(e)
    expect(ps).toContainEqual({ path: 'postgres.prot', problem: 'unknown key; did you mean "postgres.port"?', where: 'magflock.yaml:2', suggestion: 'postgres.port' })
    expect(ps).toContainEqual({ path: 'metrix', problem: 'unknown key; did you mean "metrics"?', where: 'magflock.yaml:3', suggestion: 'metrics' })
  })

  it('explains that dotted keys must be nested', async () => {
    write('magflock.yaml', 'postgres.port: 6000\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(problemsOf(e)[0]).toMatchObject({ path: 'postgres.port', where: 'magflock.yaml:1', suggestion: 'postgres.port' })
    expect(problemsOf(e)[0]!.problem).toContain('nested')
  })

  it('reports an unknown key without a suggestion when nothing is close', async () => {
    write('magflock.yaml', 'zzzzzzzz: 1\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(problemsOf(e)[0]).toEqual({ path: 'zzzzzzzz', problem: 'unknown key', where: 'magflock.yaml:1' })
  })

  it('gives file, line and column for a YAML syntax error', async () => {
    write('magflock.yaml', 'postgres:\n  port: 5433\n  settings: [a, b\nkernel: {}\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e.code).toBe(CONFIG_SYNTAX.code)
    expect(e.message).toMatch(/^YAML syntax error in magflock\.yaml at line \d+, column \d+: /)
  })

  it('reports duplicate keys as a syntax error with their line', async () => {
    write('magflock.yaml', 'flock: a\nflock: b\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e.code).toBe('E_CONFIG_SYNTAX')
    expect(e.message).toContain('line 2')
  })

  it('refuses a file whose top level is not a mapping', async () => {
    write('magflock.yaml', '- a\n- b\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(problemsOf(e)[0]).toMatchObject({ path: '(root)', where: 'magflock.yaml:1' })
  })

  it('reports an unknown flag key', async () => {
    const e = await fails(loadConfig({ cwd: dir, environ: {}, flags: { 'postgres.prt': 1 } }))
    expect(problemsOf(e)[0]).toMatchObject({ path: 'postgres.prt', where: '--postgres.prt', suggestion: 'postgres.port' })
  })

  it('lists every problem at once', async () => {
    write('magflock.yaml', 'postgres:\n  port: 0\nmetrics:\n  port: "x"\n')
    const e = await fails(loadConfig({ cwd: dir, environ: { MAGFLOCK_KERNEL__LOG_LEVEL: 'chatty' } }))
    expect(problemsOf(e)).toHaveLength(3)
    expect(e.message).toContain('3 problems')
  })

  it('never echoes a literal value of a sensitive key', async () => {
    write('magflock.yaml', 'backup:\n  encryptionKey: 12345\n')
    const e1 = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e1.message).toContain('backup.encryptionKey: expected a string, got a hidden number value')
    write('magflock.yaml', 'postgres:\n  settings:\n    password_thing: [hunter2-secret]\n')
    const e2 = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e2.message).toContain('postgres.settings.password_thing')
    expect(JSON.stringify(e2.toWire())).not.toContain('hunter2-secret')
  })
})

describe('explain', () => {
  it('gives each effective value its source: default, file:line, env file, variable or flag', async () => {
    write('magflock.yaml', 'postgres:\n  database: app\n')
    write('magflock.development.yaml', '\nmetrics:\n  port: 9999\n')
    const c = await loadConfig({ cwd: dir, environ: { MAGFLOCK_KERNEL__LOG_LEVEL: 'debug' }, flags: { 'migrations.dir': './db' } })
    const byKey = new Map(c.explain().map((e) => [e.key, e]))
    expect(byKey.get('postgres.database')).toEqual({ key: 'postgres.database', value: 'app', source: { layer: 'file', file: path.join(dir, 'magflock.yaml'), line: 2, column: 3 } })
    expect(byKey.get('metrics.port')!.source).toMatchObject({ layer: 'env-file', line: 3 })
    expect(byKey.get('kernel.logLevel')!.source).toEqual({ layer: 'environment', variable: 'MAGFLOCK_KERNEL__LOG_LEVEL' })
    expect(byKey.get('migrations.dir')).toMatchObject({ value: './db', source: { layer: 'flag', flag: '--migrations.dir' } })
    expect(byKey.get('postgres.port')).toEqual({ key: 'postgres.port', value: 5433, source: { layer: 'default' } })
    expect(byKey.has('postgres.binDir')).toBe(true)
    expect(byKey.has('kernel.restart.maxRestarts')).toBe(true)
  })

  it('keeps secret references as secret:NAME (never resolved by the loader)', async () => {
    write('magflock.yaml', 'backup:\n  encryptionKey: secret:backup-kek\n')
    const c = await loadConfig({ cwd: dir, environ: {} })
    expect(c.config.backup.encryptionKey).toBe('secret:backup-kek')
    expect(c.explain().find((e) => e.key === 'backup.encryptionKey')!.value).toBe('secret:backup-kek')
  })
})

describe('the file layer on its own', () => {
  it('refuses an invalid value in magflock.yaml even while a variable overrides it', async () => {
    write('magflock.yaml', 'postgres:\n  port: abc\n')
    const e = await fails(loadConfig({ cwd: dir, environ: { MAGFLOCK_POSTGRES__PORT: '6000' } }))
    expect(e.code).toBe(CONFIG_INVALID.code)
    expect(problemsOf(e)).toEqual([{ path: 'postgres.port', problem: 'expected an integer 1–65535, got "abc"', where: 'magflock.yaml:2' }])
  })

  it('refuses an invalid env overlay value even while a flag overrides it', async () => {
    write('magflock.production.yaml', 'kernel:\n  logLevel: loud\n')
    const e = await fails(loadConfig({ cwd: dir, env: 'production', environ: {}, flags: { 'kernel.logLevel': 'info' } }))
    expect(problemsOf(e)).toEqual([expect.objectContaining({ path: 'kernel.logLevel', where: 'magflock.production.yaml:2' })])
  })

  it('still lets a variable override a valid file value', async () => {
    write('magflock.yaml', 'postgres:\n  port: 6000\n')
    expect((await loadConfig({ cwd: dir, environ: { MAGFLOCK_POSTGRES__PORT: '6001' } })).config.postgres.port).toBe(6001)
  })
})

describe('unknown keys with an empty value', () => {
  it('refuses an unknown top-level key with nothing after it', async () => {
    write('magflock.yaml', 'postgres:\n  port: 6000\nbogus:\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(problemsOf(e)).toEqual([{ path: 'bogus', problem: 'unknown key', where: 'magflock.yaml:3' }])
  })

  it('refuses an unknown key with an empty value inside a section, with a suggestion', async () => {
    write('magflock.yaml', 'postgres:\n  prot:\n  binDir:\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(problemsOf(e)).toEqual([{ path: 'postgres.prot', problem: 'unknown key; did you mean "postgres.port"?', where: 'magflock.yaml:2', suggestion: 'postgres.port' }])
  })

  it('refuses an unknown section with only empty keys under it', async () => {
    write('magflock.yaml', 'metrix:\n  port:\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(problemsOf(e)[0]).toMatchObject({ path: 'metrix', suggestion: 'metrics' })
  })
})

describe('size and shape of magflock.yaml', () => {
  it(`refuses a file over ${MAX_CONFIG_BYTES} bytes with E_CONFIG_TOO_LARGE`, async () => {
    write('magflock.yaml', '# filler\n'.repeat(Math.ceil((MAX_CONFIG_BYTES + 1) / 9)))
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e.code).toBe(CONFIG_TOO_LARGE.code)
    expect(e.message).toContain('magflock.yaml')
    expect(e.message).toContain('1 MiB')
    expect(e.hint).toBeTruthy()
  })

  it('refuses an over-size text handed in place of the file (config set validates that way)', async () => {
    const file = path.join(dir, 'magflock.yaml')
    const e = await fails(loadConfig({ cwd: dir, environ: {}, overrides: { [file]: 'flock: a\n' + '#'.repeat(MAX_CONFIG_BYTES) } }))
    expect(e.code).toBe(CONFIG_TOO_LARGE.code)
  })

  it('loads a file just under the cap holding ~100,000 keys (linear: the old per-key uniqueness check was quadratic)', async () => {
    // A flow mapping packs the most keys per byte; each needs a uniqueness check.
    const entries: string[] = []
    let bytes = 40
    for (let i = 0; bytes < MAX_CONFIG_BYTES - 64; i++) {
      const e = `s${i.toString(36)}: 1`
      entries.push(e)
      bytes += e.length + 2
    }
    write('magflock.yaml', `postgres:\n  settings: {${entries.join(', ')}}\n`)
    const c = await loadConfig({ cwd: dir, environ: {} })
    expect(Object.keys(c.config.postgres.settings)).toHaveLength(entries.length)
    expect(entries.length).toBeGreaterThan(90_000)
  })

  it('lists the first problems of a file with thousands and counts the rest', async () => {
    write('magflock.yaml', Array.from({ length: 5000 }, (_, i) => `zz${i}: 1`).join('\n') + '\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e.message).toContain('Invalid configuration (5000 problems)')
    expect(e.message).toContain('… and 4980 more')
    expect(problemsOf(e)).toHaveLength(100)
    expect(e.details?.total).toBe(5000)
  })

  it('reports a duplicate key inside a section with its line', async () => {
    write('magflock.yaml', 'postgres:\n  port: 6000\n  database: a\n  port: 6001\n')
    const e = await fails(loadConfig({ cwd: dir, environ: {} }))
    expect(e.code).toBe(CONFIG_SYNTAX.code)
    expect(e.message).toContain('line 4, column 3: Map keys must be unique')
  })

  it('refuses a list or mapping used as a key, without a Node warning', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.message)
    process.on('warning', onWarning)
    try {
      for (const text of ['? [a, b]\n: c\n', 'postgres:\n  {port: 1}: 2\n']) {
        write('magflock.yaml', text)
        const e = await fails(loadConfig({ cwd: dir, environ: {} }))
        expect(e.code).toBe(CONFIG_SYNTAX.code)
        expect(e.message).toContain('a key must be a plain name')
      }
      await new Promise((r) => setImmediate(r)) // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning)
    }
    expect(warnings).toEqual([])
  })

  it('refuses explicit tags that would not become plain data (!!set, !custom)', async () => {
    for (const [text, tag] of [
      ['postgres: !!set {a, b}\n', '!!set'],
      ['postgres: !custom {port: 1}\n', '!custom'],
    ] as const) {
      write('magflock.yaml', text)
      const e = await fails(loadConfig({ cwd: dir, environ: {} }))
      expect(e.code).toBe(CONFIG_SYNTAX.code)
      expect(e.message).toContain(tag)
    }
  })
})
