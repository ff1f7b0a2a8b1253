import { execa } from 'execa'
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * Issue 10, items 9, 12 and 21 (first half), through the built CLI: a lost vault is never
 * silently replaced, a missing secret is a clear error, read commands never write, an
 * unreadable state dir gives clear errors, and a failed `up` leaves no token files.
 */

/**
 * name → size, mtime and mode of everything under `dir` (absent dir → empty), except what
 * Postgres itself writes (instances/, wal/: it keeps running while the kernel is stopped).
 */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name)
      if (d === dir && (name === 'instances' || name === 'wal')) continue
      const st = lstatSync(p)
      out[path.relative(dir, p)] = `${st.size}:${st.mtimeMs}:${st.mode}`
      if (st.isDirectory()) walk(p)
    }
  }
  if (existsSync(dir)) walk(dir)
  return out
}

const READ_COMMANDS = [['secrets', 'list'], ['secrets', 'get', 'postgres.superuser.password'], ['audit', 'verify'], ['status'], ['config', 'validate']]

describe('vault and secrets', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    expect((await f.run(['db', 'create', 'app', '--json'])).exitCode).toBe(0)
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('read commands leave the state dir untouched', async () => {
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    // A flock from before the store marker existed: reading must not add it.
    rmSync(path.join(f.stateDir, 'secrets.json'), { force: true })
    const before = snapshot(f.stateDir)
    for (const args of READ_COMMANDS) await f.run([...args, '--json'])
    expect(snapshot(f.stateDir)).toEqual(before)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
  })

  it('a missing superuser password is E_SECRET_MISSING, never an internal error', async () => {
    const keep = path.join(f.projectDir, 'vault.copy')
    copyFileSync(f.layout.secretsVault, keep)
    try {
      expect((await f.run(['secrets', 'rm', 'postgres.superuser.password', '--json'])).exitCode).toBe(0)
      // The kernel reads the owner through a superuser connection.
      const r = await f.run(['db', 'url', 'app', '--reveal', '--json'])
      expect(r.json?.ok === false && r.json.error.code, r.stdout).toBe('E_SECRET_MISSING')
      expect(r.exitCode).toBe(5)
      expect(r.json?.ok === false && r.json.error.hint).toMatch(/Restore/)
    } finally {
      copyFileSync(keep, f.layout.secretsVault)
    }
    expect((await f.run(['db', 'url', 'app', '--reveal', '--json'])).exitCode).toBe(0)
  })

  it('a kernel that knew a vault refuses to create a new one (E_VAULT_MISSING), and works again once it is restored', async () => {
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    const keep = path.join(f.projectDir, 'vault.copy2')
    copyFileSync(f.layout.secretsVault, keep)
    rmSync(f.layout.secretsVault)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout).toBe(5)
    expect(up.json?.ok === false && up.json.error.code).toBe('E_VAULT_MISSING')
    expect(up.json?.ok === false && up.json.error.hint).toMatch(/Restore .*secrets\.vault/)
    expect(existsSync(f.layout.secretsVault)).toBe(false)
    const list = await f.run(['secrets', 'list', '--json'])
    expect(list.json?.ok === false && list.json.error.code).toBe('E_VAULT_MISSING')
    const set = await f.run(['secrets', 'set', 'x', '--generate', '--json'])
    expect(set.json?.ok === false && set.json.error.code).toBe('E_VAULT_MISSING')
    expect(existsSync(f.layout.secretsVault)).toBe(false)

    copyFileSync(keep, f.layout.secretsVault)
    const again = await f.run(['up', '--json'])
    expect(again.exitCode, again.stdout).toBe(0)
    expect((await f.run(['db', 'url', 'app', '--reveal', '--json'])).exitCode).toBe(0)
  })
})

describe('state dir', () => {
  it('read commands on a fresh project create nothing', async () => {
    const t = tempDir('mf-fresh-')
    try {
      const env = { MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), MAGFLOCK_PREFS_DIR: path.join(t.dir, '.prefs'), HOME: t.dir }
      for (const args of READ_COMMANDS) await execa(NODE, [RUN_JS, ...args, '--json'], { cwd: t.dir, env, reject: false, stdin: 'ignore' })
      expect(existsSync(path.join(t.dir, '.magflock'))).toBe(false)
    } finally {
      t.cleanup()
    }
  })

  it('an unreadable state dir gives E_STATE_ACCESS (exit 9), not internal errors', async () => {
    const t = tempDir('mf-noaccess-')
    try {
      const state = path.join(t.dir, '.magflock')
      mkdirSync(state, { mode: 0o700 })
      copyFileSync(RUN_JS, path.join(state, 'admin.token'))
      copyFileSync(RUN_JS, path.join(state, 'secrets.vault'))
      const env = { MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), MAGFLOCK_PREFS_DIR: path.join(t.dir, '.prefs'), HOME: t.dir, NO_COLOR: '1' }
      for (const args of READ_COMMANDS.filter((a) => a[0] !== 'config')) {
        // As an unprivileged user (root reads everything).
        const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', NODE, RUN_JS, ...args, '--json'], { cwd: t.dir, env, reject: false, stdin: 'ignore' })
        const out = JSON.parse(r.stdout) as { ok: boolean; error?: { code: string; message: string; hint: string } }
        expect(out.error?.code, `${args.join(' ')}: ${r.stdout}`).toBe('E_STATE_ACCESS')
        expect(r.exitCode).toBe(9)
        expect(out.error?.message).toContain(state)
        expect(out.error?.hint).toMatch(/owns the state directory/)
      }
    } finally {
      t.cleanup()
    }
  })

  it('a failed up leaves no token files behind', async () => {
    const f = await createFlock()
    const blocker = net.createServer()
    await new Promise<void>((resolve) => blocker.listen(f.pgPort, '127.0.0.1', resolve))
    try {
      const up = await f.run(['up', '--json'])
      expect(up.exitCode).not.toBe(0)
      expect(up.json?.ok === false && up.json.error.code).toBe('E_PORT_IN_USE')
      expect(existsSync(f.layout.adminToken)).toBe(false)
      expect(existsSync(f.layout.tokens)).toBe(false)
    } finally {
      await new Promise((r) => blocker.close(r))
      await f.destroy()
    }
  })
})
