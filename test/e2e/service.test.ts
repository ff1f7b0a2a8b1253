import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from '../helpers/cli.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * `magflock service install|uninstall|status` through the BUILT CLI. This machine has no
 * running systemd, so the unit goes to a temp --unit-dir (systemctl is then never run) and
 * `systemd-analyze verify` checks it the way systemd would load it.
 */
let tmp: ReturnType<typeof tempDir>
let units: string
let state: string
const KEY = Buffer.alloc(32, 7).toString('base64')
const run = (args: string[], env: Record<string, string> = {}) =>
  cli<Record<string, unknown>>(args, { cwd: tmp.dir, env: { HOME: tmp.dir, MAGFLOCK_PREFS_DIR: path.join(tmp.dir, 'prefs'), MAGFLOCK_STATE_DIR: state, MAGFLOCK_MASTER_KEY: '', ...env } })

beforeAll(() => {
  tmp = tempDir('mf-svc-')
  units = path.join(tmp.dir, 'units')
  state = path.join(tmp.dir, 'state')
})
afterAll(() => tmp.cleanup())

describe('magflock service', () => {
  it('--dry-run prints the unit and writes nothing', async () => {
    const r = await run(['service', 'install', '--unit-dir', units, '--dry-run'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toContain('[Service]')
    expect(r.stdout).toContain('Restart=always')
    expect(existsSync(units) ? readdirSync(units) : []).toEqual([])
    expect(existsSync(path.join(state, 'magflock.service.env'))).toBe(false)
  })

  it('install writes a unit systemd-analyze accepts: Restart=always, the user, the env file; the key only in the 0600 env file', async () => {
    const r = await run(['service', 'install', '--unit-dir', units, '--env', 'production', '--json'], { MAGFLOCK_MASTER_KEY: KEY })
    expect(r.exitCode, r.stderr).toBe(0)
    const unitFile = path.join(units, 'magflock.service')
    const envFile = path.join(state, 'magflock.service.env')
    expect(r.json).toEqual({
      ok: true,
      data: expect.objectContaining({
        name: 'magflock',
        unitFile,
        envFile,
        user: os.userInfo().username,
        written: true,
        dryRun: false,
        enabled: false,
        masterKeyInEnvFile: true,
        systemctl: { run: false, reason: expect.stringContaining(units) },
      }),
    })
    const unit = readFileSync(unitFile, 'utf8')
    const lines = unit.split('\n')
    expect(lines).toContain('Restart=always')
    expect(lines).toContain(`User=${os.userInfo().username}`)
    expect(lines).toContain(`EnvironmentFile=${envFile}`)
    expect(lines).toContain(`WorkingDirectory=${tmp.dir}`)
    expect(unit).toMatch(/^ExecStart=".*node" ".*bin\/run\.js" "kernel" "start" "--foreground" "--state-dir" "[^"]+" "--env" "production"$/m)
    // No secret in the world-readable unit, nor in the --json output.
    expect(unit).not.toContain(KEY)
    expect(r.stdout).not.toContain(KEY)
    expect(statSync(unitFile).mode & 0o777).toBe(0o644)
    expect(statSync(envFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(envFile, 'utf8')).toContain(`MAGFLOCK_MASTER_KEY=${KEY}`)

    const v = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' })
    expect(v.stderr + v.stdout).toBe('')
    expect(v.status).toBe(0)
  })

  it('systemd-analyze verify catches a broken unit (the check is real)', () => {
    const broken = path.join(tmp.dir, 'broken')
    mkdirSync(broken, { recursive: true })
    const text = readFileSync(path.join(units, 'magflock.service'), 'utf8').replace('Restart=always', 'Restart=sometimes')
    writeFileSync(path.join(broken, 'magflock.service'), text)
    const v = spawnSync('systemd-analyze', ['verify', path.join(broken, 'magflock.service')], { encoding: 'utf8' })
    expect(v.stderr).toMatch(/restart specifier/i)
  })

  it('status reports it installed; a unit not written by magflock is refused with exit 4', async () => {
    const s = await run(['service', 'status', '--unit-dir', units, '--json'])
    expect(s.exitCode).toBe(0)
    expect(s.json).toMatchObject({ ok: true, data: { name: 'magflock', installed: true, systemctl: { run: false } } })
    writeFileSync(path.join(units, 'other.service'), '[Service]\nExecStart=/bin/true\n')
    const foreign = await run(['service', 'install', '--unit-dir', units, '--name', 'other', '--json'])
    expect(foreign.exitCode).toBe(4)
    expect(foreign.json).toMatchObject({ ok: false, error: { code: 'E_SERVICE_UNIT_FOREIGN', hint: expect.stringContaining('--name') } })
    expect(readFileSync(path.join(units, 'other.service'), 'utf8')).toBe('[Service]\nExecStart=/bin/true\n')
    const rm = await run(['service', 'uninstall', '--unit-dir', units, '--name', 'other'])
    expect(rm.exitCode).toBe(4)
    expect(existsSync(path.join(units, 'other.service'))).toBe(true)
  })

  it('runs the kernel as the owner of the state dir by default', async () => {
    const pgUser = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).split(':')
    const owned = path.join(tmp.dir, 'owned-state')
    mkdirSync(owned)
    chownSync(owned, Number(pgUser[2]), Number(pgUser[3]))
    const r = await run(['service', 'install', '--unit-dir', units, '--dry-run', '--json'], { MAGFLOCK_STATE_DIR: owned })
    expect(r.json).toMatchObject({ ok: true, data: { user: 'postgres', dryRun: true, written: false } })
    expect(r.json?.ok && String(r.json.data.unit)).toContain('\nUser=postgres\n')
  })

  it('refuses a bad unit name and an unknown user, writing nothing', async () => {
    const bad = await run(['service', 'install', '--unit-dir', units, '--name', '../x', '--json'])
    expect(bad.exitCode).toBe(2)
    expect(bad.json).toMatchObject({ ok: false, error: { code: 'E_SERVICE_NAME_INVALID' } })
    const user = await run(['service', 'install', '--unit-dir', units, '--name', 'nouser', '--user', 'no-such-user-mf', '--json'])
    expect(user.json).toMatchObject({ ok: false, error: { code: 'E_OS_USER_MISSING' } })
    expect(existsSync(path.join(units, 'nouser.service'))).toBe(false)
  })

  it('without MAGFLOCK_MASTER_KEY the env file says where the key comes from', async () => {
    const r = await run(['service', 'install', '--unit-dir', units, '--name', 'nokey'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(readFileSync(path.join(state, 'nokey.service.env'), 'utf8')).toMatch(/No MAGFLOCK_MASTER_KEY: the vault key is read from .*master\.key/)
    execFileSync('systemd-analyze', ['verify', path.join(units, 'nokey.service')])
  })

  it('uninstall removes the unit and the env file, and is idempotent', async () => {
    const r = await run(['service', 'uninstall', '--unit-dir', units, '--json'])
    expect(r.exitCode).toBe(0)
    expect(r.json).toMatchObject({ ok: true, data: { removed: [path.join(units, 'magflock.service'), path.join(state, 'magflock.service.env')], disabled: false } })
    expect(existsSync(path.join(units, 'magflock.service'))).toBe(false)
    expect(existsSync(path.join(state, 'magflock.service.env'))).toBe(false)
    const again = await run(['service', 'uninstall', '--unit-dir', units, '--json'])
    expect(again.exitCode).toBe(0)
    expect(again.json).toMatchObject({ ok: true, data: { removed: [] } })
    const s = await run(['service', 'status', '--unit-dir', units, '--json'])
    expect(s.json).toMatchObject({ ok: true, data: { installed: false } })
  })
})
