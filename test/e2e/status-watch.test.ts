import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusOutput } from '../../src/api/core.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { tempDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

/**
 * `status --watch` in a terminal (util-linux `script` gives it a pty): the first frame is the
 * plain status, printed as soon as the first status call returns, before ink has loaded;
 * the live view then replaces it and `q` quits.
 */
describe('magflock status --watch in a terminal (built CLI)', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    if (r.exitCode !== 0) throw new Error(`up failed: ${r.stdout} ${r.stderr}`)
  })
  afterAll(async () => {
    await f.destroy()
  })

  it('shows the plain status first, then the live view, and q quits with exit 0', async () => {
    const s = await f.run<StatusOutput>(['status', '--json'])
    if (!s.json?.ok) throw new Error(`status failed: ${s.stdout}`)
    const primary = s.json.data.instances.find((i) => i.role === 'primary')!
    const cmd = [NODE, RUN_JS, 'status', '--watch'].map((a) => `'${a}'`).join(' ')
    // ink renders only the last frame, at exit, when it believes it runs in CI (CI=true, as
    // .ci/run has it, or any CI_* variable): this test is a person at a terminal.
    const env: NodeJS.ProcessEnv = { ...process.env, ...f.env }
    for (const k of Object.keys(env)) if (k === 'CI' || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('CI_')) delete env[k]
    const child = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], { cwd: f.projectDir, env, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      await waitFor('the live view', async () => out.includes('q to quit'), 60_000)
      child.stdin.write('q')
      expect(await exited).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
    // The plain renderer's kernel line ("kernel   pid N") comes before ink's header
    // ("MagFlock — … — kernel pid N"), both for the same kernel and instance.
    const plain = out.indexOf(`kernel   pid ${s.json.data.kernel.pid}`)
    const live = out.indexOf('MagFlock —')
    expect(plain).toBeGreaterThanOrEqual(0)
    expect(live).toBeGreaterThan(plain)
    expect(out.slice(plain, live)).toContain(primary.name)
    expect(out.slice(live)).toContain(`kernel pid ${s.json.data.kernel.pid}`)
  })

  /** The modules a built-CLI command loads (test/helpers/module-trace.mjs) and its --json envelope. */
  async function loadedModules(args: string[]): Promise<{ ok: boolean; modules: string[] }> {
    const tmp = tempDir('mf-trace-')
    const out = path.join(tmp.dir, 'modules.txt')
    const hook = path.resolve(import.meta.dirname, '../helpers/module-trace.mjs')
    const r = await execa(NODE, ['--import', hook, RUN_JS, ...args], {
      cwd: f.projectDir,
      env: { ...process.env, ...f.env, MODULE_TRACE_OUT: out, NO_COLOR: '1' },
      reject: false,
      stdin: 'ignore',
      timeout: 120_000,
    })
    try {
      const envelope = JSON.parse(String(r.stdout)) as { ok: boolean }
      return { ok: envelope.ok, modules: readFileSync(out, 'utf8').split('\n').filter(Boolean) }
    } finally {
      tmp.cleanup()
    }
  }
  const zodOrSchemas = (m: string) => /\/vendor\/zod\.js$|\/node_modules\/zod\/|\/dist\/api\/(?!route-meta|lazy|[a-z]+-meta)[a-z-]+\.js$/.test(m)

  it('status --json loads neither zod nor the route schemas (route metadata only: src/api/lazy.ts)', async () => {
    // The control: a command that calls a route through its full contract loads them, so the
    // trace would show a regression.
    const control = await loadedModules(['token', 'list', '--json'])
    expect(control.ok).toBe(true)
    expect(control.modules.filter(zodOrSchemas)).toEqual(expect.arrayContaining([expect.stringMatching(/\/dist\/api\/core\.js$/), expect.stringMatching(/zod/)]))

    const st = await loadedModules(['status', '--json'])
    expect(st.ok).toBe(true)
    expect(st.modules).toEqual(expect.arrayContaining([expect.stringMatching(/\/dist\/commands\/status\.js$/), expect.stringMatching(/\/dist\/api\/lazy\.js$/)]))
    expect(st.modules.filter(zodOrSchemas)).toEqual([])
  })
})
