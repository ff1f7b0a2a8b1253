import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stopOrphanInstances } from '../../src/daemon/orphans.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { stateLayout } from '../../src/platform/paths.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { freePort } from '../../src/platform/ports.js'
import { run } from '../../src/platform/process.js'
import type { StatusOutput } from '../../src/api/core.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'
import { ROOT } from '../helpers/cli.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * README.md's Quick start and First steps, run as written: the blocks between the readme-*
 * markers, in a fresh directory that holds nothing but the repo-local launcher `./magflock`
 * (a link to the clone's, as `ln -s` would make), with the user's PATH (no node_modules/.bin,
 * so the system Node, 20 on Debian 12, comes first). `npm ci` is what the suite itself was
 * installed with; the rest of the Quick start's first line runs here. Only the ports (and the
 * vault's master key) come from the environment, so the flock does not collide with others.
 */
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

function block(marker: string): string {
  const m = new RegExp(`<!-- ${marker}:start -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\s*<!-- ${marker}:end -->`).exec(README)
  if (!m) throw new Error(`README.md has no ${marker} block`)
  return m[1]!
}

const commands = (text: string) => text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))

const tmp = tempDir('mf-readme-')
const dir = tmp.dir
const layout = stateLayout(path.join(dir, '.magflock'))
let env: Record<string, string>

async function sh(script: string, timeoutMs = 240_000) {
  const file = path.join(dir, `step-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(file, `set -eo pipefail\n${script}`)
  return run('bash', ['-x', file], { cwd: dir, env, reject: false, timeoutMs })
}

beforeAll(async () => {
  symlinkSync(path.join(ROOT, 'magflock'), path.join(dir, 'magflock'))
  const userPath = (process.env.PATH ?? '')
    .split(':')
    .filter((p) => p && !p.includes('node_modules'))
    .join(':')
  env = {
    PATH: userPath,
    HOME: dir,
    MAGFLOCK_POSTGRES__PORT: String(await freePort()),
    MAGFLOCK_POSTGRES__SETTINGS__FSYNC: 'off',
    MAGFLOCK_METRICS__PORT: String(await freePort()),
    MAGFLOCK_REPLICATION__BASE_PORT: String(await freePort()),
    MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 9).toString('base64'),
    MAGFLOCK_PREFS_DIR: path.join(dir, '.prefs'),
  }
})

afterAll(async () => {
  const info = await readKernelInfo(layout).catch(() => undefined)
  if (info && isProcessAliveSync(info.pid)) process.kill(info.pid, 'SIGKILL')
  await stopOrphanInstances(layout).catch(() => [])
  tmp.cleanup()
})

describe('README.md', () => {
  it('Quick start: two commands, the second is what .ci/run runs', () => {
    const quick = commands(block('readme-quickstart'))
    expect(quick).toEqual(['npm ci && ./magflock up', 'npm test'])
    expect(readFileSync(path.join(ROOT, '.ci/run'), 'utf8')).toMatch(/^npm ci\b/m)
    expect(readFileSync(path.join(ROOT, '.ci/run'), 'utf8').trim().split('\n').at(-1)).toBe('npm test')
  })

  it("Quick start: npm's install on the system Node prints no (false) EBADENGINE warning", async () => {
    // The lock file's tree, as `npm ci` resolves it, with the repository's .npmrc, on the npm
    // of the user's PATH (the system Node's); --dry-run: nothing is installed.
    const npmDir = path.join(dir, 'npm-ci')
    mkdirSync(npmDir)
    for (const f of ['package.json', 'package-lock.json', '.npmrc']) copyFileSync(path.join(ROOT, f), path.join(npmDir, f))
    // Not the settings of an npm this suite may run under (npm test sets npm_config_loglevel,
    // npm_config_local_prefix, …): only the repository's .npmrc decides.
    const npmVars = Object.fromEntries(Object.keys(process.env).filter((k) => /^npm_/i.test(k)).map((k) => [k, undefined]))
    const r = await run('npm', ['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: npmDir, env: { ...npmVars, ...env }, reject: false, timeoutMs: 180_000 })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout + r.stderr).not.toContain('EBADENGINE')
  })

  let upOut = ''
  it('Quick start: `./magflock up` (after npm ci) prints lines that paste as printed', async () => {
    const line = commands(block('readme-quickstart'))[0]!.replace(/^npm ci && /, '')
    const up = await sh(line)
    expect(up.exitCode, up.stderr).toBe(0)
    upOut = up.stdout
    // The CLI is named as it was invoked, the password is never printed, psql does not prompt.
    expect(upOut).toContain('Password: ./magflock secrets get postgres.superuser.password --reveal')
    const connect = /^Connect: +(.*)$/m.exec(upOut)?.[1]
    expect(connect).toMatch(/^PGSERVICEFILE=\S+ \S*psql service=magflock$/)
    expect(readFileSync(layout.pgService, 'utf8')).toContain('target_session_attrs=read-write')
    const psql = await sh(`${connect} -w -Atc 'select 40 + 2'`)
    expect(psql.exitCode, psql.stderr).toBe(0)
    expect(psql.stdout.trim()).toBe('42')
    const api = /^API: +(.*)$/m.exec(upOut)?.[1]
    const curl = await sh(`${api} -fsS`)
    expect(curl.exitCode, curl.stderr).toBe(0)
    expect(JSON.parse(curl.stdout)).toHaveProperty('kernel.pid')
    // Nothing in the output is the password itself.
    const pw = readFileSync(layout.pgpass, 'utf8').trim().split('\n')[0]!.split(':').at(-1)!
    expect(upOut).not.toContain(pw)
  })

  it('First steps: every line succeeds in order, as written', async () => {
    const res = await sh(block('readme-first-steps'), 300_000)
    expect(res.exitCode, `${res.stdout}\n${res.stderr}`).toBe(0)
    // `db psql app -- -c '\d users'` showed the migrated table, as the owner of app.
    expect(res.stdout).toMatch(/Table "public\.users"/)
    expect(res.stdout).toContain('email')
    // The last status, after the switchover: names are no role words, so the wording stays
    // true; the replica the kernel created is not "(adopted)".
    const last = res.stdout.slice(res.stdout.lastIndexOf('kernel   pid'))
    expect(last).toMatch(/^primary +pg2 +running/m)
    expect(last).toMatch(new RegExp(`^replica +${FIRST_INSTANCE} +running`, 'm'))
    expect(res.stdout).not.toContain('(adopted)')
    // After the switchover the Connect line `up` printed still reaches a read-write primary.
    const up = await sh('./magflock up --json')
    expect(up.exitCode, up.stderr).toBe(0)
    const s = (JSON.parse(up.stdout) as { data: StatusOutput }).data
    expect(s.instances.filter((i) => i.role === 'primary')).toHaveLength(1)
    const connect = /^Connect: +(.*)$/m.exec(upOut)![1]!
    const rw = await sh(`${connect} -w -qAtc 'create table after_switchover (id int); select pg_is_in_recovery()'`)
    expect(rw.exitCode, rw.stderr).toBe(0)
    expect(rw.stdout.trim()).toBe('f')
  })
})
