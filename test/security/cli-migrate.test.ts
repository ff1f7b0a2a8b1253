import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dbCreate } from '../../src/api/db.js'
import { cli } from '../helpers/cli.js'
import { tempDir } from '../helpers/tmp.js'
import { startSecurityFlock, type SecurityFlock } from './harness.js'

/**
 * `magflock db migrate --db` / `db migrate status --db` (the built CLI) with ci, viewer and
 * admin tokens: the folder comes from the kernel (its project's ./migrations, or an admin's
 * registration), never from where the CLI runs or what it sends.
 */
let f: SecurityFlock
let elsewhere: { dir: string; cleanup(): void }

beforeAll(async () => {
  f = await startSecurityFlock({ migrations: { '00001_users.sql': 'CREATE TABLE users (id int);\n' } })
  await f.admin.call(dbCreate, { name: 'app' })
  await f.admin.call(dbCreate, { name: 'other' })
  elsewhere = tempDir('mf-cli-elsewhere-')
  // A different ./migrations where the CLI runs: the kernel must not read it.
  mkdirSync(path.join(elsewhere.dir, 'migrations'))
  writeFileSync(path.join(elsewhere.dir, 'migrations', '00001_wrong.sql'), 'CREATE TABLE wrong (id int);\n')
}, 180_000)
afterAll(async () => {
  await f?.stop()
  elsewhere?.cleanup()
})

const run = <T>(args: string[], token: string, cwd = f.projectDir) =>
  cli<T>([...args, '--state-dir', f.stateDir, '--json'], { cwd, env: { MAGFLOCK_TOKEN: token, MAGFLOCK_PREFS_DIR: path.join(f.projectDir, '.prefs') } })

describe('db migrate through the kernel with low-privilege tokens (built CLI)', { timeout: 120_000 }, () => {
  it('ci: --dir is refused with exit 9; without it the kernel reads its own project folder', async () => {
    const refused = await run(['db', 'migrate', '--db', 'app', '--dir', elsewhere.dir], f.tokens.ci)
    expect(refused.exitCode, refused.stdout + refused.stderr).toBe(9)
    expect(refused.json).toMatchObject({ ok: false, error: { code: 'E_MIGRATE_DIR_FORBIDDEN' } })
    const ok = await run<{ applied: Array<{ file: string }>; dir: string; dirSource: string }>(['db', 'migrate', '--db', 'app'], f.tokens.ci, elsewhere.dir)
    expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({ ok: true, data: { dir: path.join(f.projectDir, 'migrations'), dirSource: 'config', applied: [{ file: '00001_users.sql' }] } })
  })

  it('viewer: status works, --dir does not', async () => {
    const st = await run<{ applied: unknown[]; ok: boolean }>(['db', 'migrate', 'status', '--db', 'app'], f.tokens.viewer)
    expect(st.exitCode, st.stdout + st.stderr).toBe(0)
    expect(st.json).toMatchObject({ ok: true, data: { ok: true, applied: [expect.anything()] } })
    const refused = await run(['db', 'migrate', 'status', '--db', 'app', '--dir', '/etc'], f.tokens.viewer)
    expect(refused.exitCode).toBe(9)
    expect(refused.json).toMatchObject({ ok: false, error: { code: 'E_MIGRATE_DIR_FORBIDDEN' } })
  })

  it('admin --register makes a folder the database\'s for every role; ci cannot register', async () => {
    const denied = await run(['db', 'migrate', '--db', 'other', '--dir', elsewhere.dir, '--register'], f.tokens.ci)
    expect(denied.json).toMatchObject({ ok: false, error: { code: 'E_MIGRATE_DIR_FORBIDDEN' } })
    const reg = await run(['db', 'migrate', '--db', 'other', '--dir', path.join(elsewhere.dir, 'migrations'), '--register', '--dry-run'], f.tokens.admin)
    expect(reg.exitCode, reg.stdout + reg.stderr).toBe(0)
    const ci = await run<{ applied: Array<{ file: string }>; dirSource: string }>(['db', 'migrate', '--db', 'other'], f.tokens.ci)
    expect(ci.json).toMatchObject({ ok: true, data: { dirSource: 'registered', applied: [{ file: '00001_wrong.sql' }] } })
  })
})
