import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { diffConfig } from '../../../src/config/diff.js'
import { getConfigValue, setConfigValue } from '../../../src/config/edit.js'
import { effectiveEnv } from '../../../src/config/flags.js'
import { loadConfig } from '../../../src/config/load.js'
import { userPrefs } from '../../../src/config/prefs.js'
import { reloadConfig } from '../../../src/config/reload.js'
import { defaultConfig } from '../../../src/config/schema.js'
import { isMagflockError } from '../../../src/errors/index.js'
import { tempDir } from '../../helpers/tmp.js'
import { errorCode } from '../../helpers/errors.js'

let dir: string
let cleanup: () => void
beforeEach(() => {
  const t = tempDir('mf-cfg-')
  dir = t.dir
  cleanup = t.cleanup
})
afterEach(() => cleanup())


describe('setConfigValue (config set)', () => {
  it('edits magflock.yaml keeping comments and other keys', async () => {
    const file = path.join(dir, 'magflock.yaml')
    writeFileSync(file, '# project config\npostgres:\n  # the port\n  port: 5433 # inline\n  database: app\n')
    const r = await setConfigValue({ cwd: dir, key: 'postgres.port', value: '6543', environ: {} })
    expect(r).toEqual({ file, key: 'postgres.port', value: 6543, created: false })
    const text = readFileSync(file, 'utf8')
    expect(text).toContain('# project config')
    expect(text).toContain('# the port')
    expect(text).toContain('port: 6543')
    expect(text).toContain('database: app')
    expect((await loadConfig({ cwd: dir, environ: {} })).config.postgres.port).toBe(6543)
  })

  it('writes the env overlay with --env, creating it and its sections', async () => {
    const r = await setConfigValue({ cwd: dir, key: 'replication.failover.graceSeconds', value: '3', env: 'production', environ: {} })
    expect(r.file).toBe(path.join(dir, 'magflock.production.yaml'))
    expect(r.created).toBe(true)
    const c = await loadConfig({ cwd: dir, env: 'production', environ: {} })
    expect(c.config.replication.failover.graceSeconds).toBe(3)
    expect(c.sourceOf('replication.failover.graceSeconds')).toMatchObject({ layer: 'env-file' })
  })

  it('sets a postgres setting under the record', async () => {
    await setConfigValue({ cwd: dir, key: 'postgres.settings.work_mem', value: '8MB', environ: {} })
    await setConfigValue({ cwd: dir, key: 'postgres.settings.max_connections', value: '20', environ: {} })
    expect((await loadConfig({ cwd: dir, environ: {} })).config.postgres.settings).toEqual({ work_mem: '8MB', max_connections: 20 })
  })

  it('refuses an invalid value while a variable overrides the key, leaving the file untouched', async () => {
    const file = path.join(dir, 'magflock.yaml')
    writeFileSync(file, 'postgres:\n  port: 5433\n')
    const environ = { MAGFLOCK_POSTGRES__PORT: '6000' }
    expect(await errorCode(setConfigValue({ cwd: dir, key: 'postgres.port', value: 'abc', environ }))).toBe('E_CONFIG_INVALID')
    expect(readFileSync(file, 'utf8')).toBe('postgres:\n  port: 5433\n')
    await setConfigValue({ cwd: dir, key: 'postgres.port', value: '6001', environ })
    expect(readFileSync(file, 'utf8')).toBe('postgres:\n  port: 6001\n')
  })

  it('refuses to edit a file over the size cap', async () => {
    const file = path.join(dir, 'magflock.yaml')
    const big = 'flock: a\n' + '# x\n'.repeat(300_000)
    writeFileSync(file, big)
    expect(await errorCode(setConfigValue({ cwd: dir, key: 'postgres.port', value: '6001', environ: {} }))).toBe('E_CONFIG_TOO_LARGE')
    expect(readFileSync(file, 'utf8')).toBe(big)
  })

  it('refuses an invalid value and leaves the file untouched', async () => {
    const file = path.join(dir, 'magflock.yaml')
    writeFileSync(file, 'postgres:\n  port: 5433\n')
    expect(await errorCode(setConfigValue({ cwd: dir, key: 'postgres.port', value: 'abc', environ: {} }))).toBe('E_CONFIG_INVALID')
    expect(readFileSync(file, 'utf8')).toBe('postgres:\n  port: 5433\n')
  })

  it('refuses an unknown key with a suggestion', async () => {
    try {
      await setConfigValue({ cwd: dir, key: 'postgres.prot', value: '1', environ: {} })
      expect.fail('should throw')
    } catch (err) {
      expect(isMagflockError(err) && err.code).toBe('E_CONFIG_UNKNOWN_KEY')
      expect((err as Error).message).toContain('did you mean "postgres.port"')
    }
  })

  it('refuses to edit a file with a YAML syntax error', async () => {
    writeFileSync(path.join(dir, 'magflock.yaml'), 'a: [1,\n')
    expect(await errorCode(setConfigValue({ cwd: dir, key: 'postgres.port', value: '1', environ: {} }))).toBe('E_CONFIG_SYNTAX')
  })

  it('hides a literal value of a sensitive key in its result', async () => {
    const r = await setConfigValue({ cwd: dir, key: 'backup.encryptionKey', value: 'plain-literal-key', environ: {} })
    expect(r.value).toBe('***')
    const r2 = await setConfigValue({ cwd: dir, key: 'backup.encryptionKey', value: 'secret:kek', environ: {} })
    expect(r2.value).toBe('secret:kek')
  })
})

describe('getConfigValue', () => {
  it('returns a leaf or a section, and refuses unknown keys', () => {
    const c = defaultConfig()
    expect(getConfigValue(c, 'postgres.port')).toBe(5433)
    expect(getConfigValue(c, 'kernel.restart')).toEqual(c.kernel.restart)
    expect(() => getConfigValue(c, 'postgres.nope')).toThrow(/not a configuration key/)
  })
})

describe('diffConfig', () => {
  it('splits changed keys into live and restart-required', () => {
    const a = defaultConfig()
    const b = structuredClone(a)
    b.kernel.logLevel = 'debug'
    b.backup.schedule = '0 3 * * *'
    b.replication.failover.graceSeconds = 5
    b.migrations.lockTimeoutSeconds = 10
    b.postgres.port = 6000
    b.metrics.port = 9999
    b.postgres.settings = { work_mem: '8MB', shared_buffers: '256MB' }
    expect(diffConfig(a, b)).toEqual({
      live: ['backup.schedule', 'kernel.logLevel', 'migrations.lockTimeoutSeconds', 'postgres.settings.work_mem', 'replication.failover.graceSeconds'],
      restartRequired: ['metrics.port', 'postgres.port', 'postgres.settings.shared_buffers'],
    })
  })

  it('reports nothing for identical configs', () => {
    expect(diffConfig(defaultConfig(), defaultConfig())).toEqual({ live: [], restartRequired: [] })
  })
})

describe('reloadConfig', () => {
  it('returns the new config and what applies live', async () => {
    writeFileSync(path.join(dir, 'magflock.yaml'), 'kernel:\n  logLevel: debug\npostgres:\n  port: 7777\n')
    const current = defaultConfig()
    const r = await reloadConfig(current, () => loadConfig({ cwd: dir, environ: {} }))
    expect(r.applied).toEqual(['kernel.logLevel'])
    expect(r.restartRequired).toEqual(['postgres.port'])
    expect(r.next.kernel.logLevel).toBe('debug')
    expect(current.kernel.logLevel).toBe('info')
  })

  it('refuses an invalid new file and leaves the current config untouched', async () => {
    writeFileSync(path.join(dir, 'magflock.yaml'), 'kernel:\n  logLevel: shouting\n')
    const current = defaultConfig()
    const before = structuredClone(current)
    expect(await errorCode(reloadConfig(current, () => loadConfig({ cwd: dir, environ: {} })))).toBe('E_CONFIG_INVALID')
    expect(current).toEqual(before)
  })
})

describe('user prefs', () => {
  it('stores defaultEnv under MAGFLOCK_PREFS_DIR and effectiveEnv uses it last', () => {
    const environ = { MAGFLOCK_PREFS_DIR: dir }
    expect(effectiveEnv(undefined, environ)).toBe('development')
    userPrefs(environ).set('defaultEnv', 'staging')
    expect(effectiveEnv(undefined, environ)).toBe('staging')
    expect(effectiveEnv(undefined, { ...environ, MAGFLOCK_ENV: 'qa' })).toBe('qa')
    expect(effectiveEnv('production', { ...environ, MAGFLOCK_ENV: 'qa' })).toBe('production')
  })

  it('rejects an invalid env preference', () => {
    expect(() => userPrefs({ MAGFLOCK_PREFS_DIR: dir }).set('defaultEnv', '../x')).toThrow()
  })
})

describe('readUserPrefs (the cheap reader every command uses)', () => {
  it('reads exactly what userPrefs() (conf) wrote, and feeds resolveStateDir and effectiveEnv', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const os = await import('node:os')
    const path = await import('node:path')
    const { userPrefs } = await import('../../../src/config/prefs.js')
    const { readUserPrefs } = await import('../../../src/config/prefs-read.js')
    const { resolveStateDir } = await import('../../../src/platform/paths.js')
    const { effectiveEnv } = await import('../../../src/config/flags.js')
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-prefs-'))
    try {
      const environ = { MAGFLOCK_PREFS_DIR: dir }
      expect(readUserPrefs(environ)).toEqual({})
      userPrefs(environ).set('defaultStateDir', '/srv/flock-a')
      userPrefs(environ).set('defaultEnv', 'staging')
      expect(readUserPrefs(environ)).toEqual({ defaultStateDir: '/srv/flock-a', defaultEnv: 'staging' })
      expect(resolveStateDir(undefined, environ, '/x')).toBe('/srv/flock-a')
      expect(resolveStateDir(undefined, { ...environ, MAGFLOCK_STATE_DIR: '/y' }, '/x')).toBe('/y')
      expect(resolveStateDir('rel', environ, '/x')).toBe('/x/rel')
      expect(effectiveEnv(undefined, environ)).toBe('staging')
      expect(effectiveEnv('production', environ)).toBe('production')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
