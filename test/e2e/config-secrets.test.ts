import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/tmp.js'

/**
 * The BUILT CLI as a subprocess (build first: `npx tsc -p tsconfig.build.json`). The CLI is
 * run from a copy of bin/ + dist/ + package.json (node_modules linked) so that a stale
 * oclif.manifest.json in the work tree cannot hide commands.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const NODE = path.join(root, 'node_modules/.bin/node')
const MARKER = 'MARKER-7f3c9e-do-not-leak-0a1b2c'

let tmp: ReturnType<typeof tempDir>
let cli: string
let project: string
let state: string
const outputs: string[] = []

interface Run {
  code: number
  stdout: string
  stderr: string
  json: { ok: boolean; data?: Record<string, unknown>; error?: { code: string; message: string; hint?: string; details?: Record<string, unknown> } }
}

const cliEnv = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  HOME: tmp.dir,
  MAGFLOCK_STATE_DIR: state,
  MAGFLOCK_PREFS_DIR: path.join(tmp.dir, 'prefs'),
  ...extra,
})

function toRun(code: number | null, stdout: string, stderr: string, keep: boolean): Run {
  if (keep) outputs.push(stdout, stderr)
  let json: Run['json'] = { ok: false }
  try {
    json = JSON.parse(stdout) as Run['json']
  } catch {
    /* human output */
  }
  return { code: code ?? -1, stdout, stderr, json }
}

function run(args: string[], opts: { input?: string; env?: Record<string, string>; keep?: boolean } = {}): Run {
  const res = spawnSync(NODE, [cli, ...args], { cwd: project, input: opts.input ?? '', encoding: 'utf8', timeout: 120_000, env: cliEnv(opts.env) })
  return toRun(res.status, res.stdout, res.stderr, opts.keep !== false)
}

/** The same, without blocking: independent commands run a few at a time on this small machine. */
function runAsync(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [cli, ...args], { cwd: project, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve(toRun(code, stdout, stderr, true)))
  })
}

async function runAll(list: string[][], concurrency = 3): Promise<Run[]> {
  const out: Run[] = []
  let next = 0
  const worker = async () => {
    while (next < list.length) {
      const i = next++
      out[i] = await runAsync(list[i]!)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return out
}

beforeAll(() => {
  if (!existsSync(path.join(root, 'dist/commands/config/show.js'))) throw new Error('dist is missing the config commands: run `npx tsc -p tsconfig.build.json` first')
  tmp = tempDir('mf-e2e-cfg-')
  const copy = path.join(tmp.dir, 'cli')
  mkdirSync(copy)
  for (const p of ['bin', 'dist', 'package.json']) cpSync(path.join(root, p), path.join(copy, p), { recursive: true })
  symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'))
  cli = path.join(copy, 'bin/run.js')
  project = path.join(tmp.dir, 'project')
  state = path.join(tmp.dir, 'state')
  mkdirSync(project)
  writeFileSync(path.join(project, 'magflock.yaml'), '# project\npostgres:\n  port: 6100 # primary\n')
})
afterAll(() => tmp?.cleanup())

describe('magflock config (built CLI)', () => {
  it('show --json merges the layers; --explain names each source', () => {
    writeFileSync(path.join(project, 'magflock.production.yaml'), 'metrics:\n  port: 9300\n')
    const r = run(['config', 'show', '--env', 'production', '--explain', '--json'], { env: { MAGFLOCK_KERNEL__LOG_LEVEL: 'debug' } })
    expect(r.code).toBe(0)
    expect(r.json.ok).toBe(true)
    const cfg = r.json.data!.config as { postgres: { port: number }; metrics: { port: number }; kernel: { logLevel: string } }
    expect(cfg.postgres.port).toBe(6100)
    expect(cfg.metrics.port).toBe(9300)
    expect(cfg.kernel.logLevel).toBe('debug')
    const where = Object.fromEntries((r.json.data!.entries as Array<{ key: string; where: string }>).map((e) => [e.key, e.where]))
    expect(where['postgres.port']).toBe('magflock.yaml:3')
    expect(where['metrics.port']).toBe('magflock.production.yaml:2')
    expect(where['kernel.logLevel']).toBe('MAGFLOCK_KERNEL__LOG_LEVEL')
    expect(where['migrations.dir']).toBe('default')
  })

  it('set keeps comments; validate exits 0, then 2 with the problem, its value and file:line', { timeout: 180_000 }, () => {
    const s = run(['config', 'set', 'postgres.database', 'app', '--json'])
    expect(s.code).toBe(0)
    const text = readFileSync(path.join(project, 'magflock.yaml'), 'utf8')
    expect(text).toContain('# project')
    expect(text).toContain('# primary')
    expect(run(['config', 'validate']).code).toBe(0)
    writeFileSync(path.join(project, 'magflock.staging.yaml'), '\npostgres:\n  port: abc\n  prot: 1\n')
    const v = run(['config', 'validate', '--env', 'staging', '--json'])
    expect(v.code).toBe(2)
    expect(v.json.error!.code).toBe('E_CONFIG_INVALID')
    expect(v.json.error!.message).toContain('postgres.port: expected an integer 1–65535, got "abc" (magflock.staging.yaml:3)')
    expect(v.json.error!.message).toContain('did you mean "postgres.port"')
    const human = run(['config', 'validate', '--env', 'staging'])
    expect(human.code).toBe(2)
    expect(human.stderr).toContain('Error [E_CONFIG_INVALID]')
    expect(human.stderr).not.toMatch(/\n\s+at /)
  })

  it('a YAML syntax error shows file, line and column', () => {
    writeFileSync(path.join(project, 'magflock.broken.yaml'), 'postgres:\n  port: [1,\n')
    const r = run(['config', 'get', 'postgres.port', '--env', 'broken', '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error!.code).toBe('E_CONFIG_SYNTAX')
    expect(r.json.error!.message).toMatch(/magflock\.broken\.yaml at line \d+, column \d+/)
  })
})

describe('magflock secrets (built CLI) and redaction', () => {
  it('set/get/list/rm/rotate never print a value unless --reveal, and the marker appears nowhere else', { timeout: 300_000 }, async () => {
    expect(run(['secrets', 'set', 'marker', '--from-stdin', '--json'], { input: MARKER + '\n' }).code).toBe(0)
    expect(run(['config', 'set', 'backup.encryptionKey', 'secret:marker', '--json']).code).toBe(0)
    const commands: string[][] = [
      ['config', 'show', '--json'],
      ['config', 'show', '--explain', '--json'],
      ['config', 'get', 'backup.encryptionKey', '--json'],
      ['config', 'get', 'backup', '--json'],
      ['config', 'validate', '--json'],
      ['config', 'validate', '--check-secrets', '--json'],
      ['config', 'reload', '--json'],
      ['secrets', 'get', 'marker', '--json'],
      ['secrets', 'get', 'marker'],
      ['secrets', 'list', '--json'],
      ['secrets', 'get', 'missing', '--json'],
      ['secrets', 'rotate', 'postgres.superuser.password', '--json'],
    ]
    const results = await runAll(commands)
    results.forEach((r, i) => expect(r.stdout.trim().length + r.stderr.trim().length, commands[i]!.join(' ')).toBeGreaterThan(0))
    for (const c of [['secrets', 'set', 'other', '--generate', '--json'], ['secrets', 'rotate', 'other', '--json'], ['secrets', 'rm', 'other', '--json']]) {
      expect(run(c).code, c.join(' ')).toBe(0)
    }
    const list = run(['secrets', 'list', '--json'])
    expect(list.json.data).toMatchObject({ store: 'file', secrets: [{ name: 'marker', pendingRotation: false }] })
    expect(run(['config', 'get', 'backup.encryptionKey', '--json']).json.data!.value).toBe('secret:marker')

    // Every output so far, and every file in the project and state dirs, is free of the marker.
    const leaks = outputs.filter((o) => o.includes(MARKER))
    expect(leaks).toEqual([])
    for (const dir of [project, state]) {
      for (const f of readdirSync(dir, { recursive: true }) as string[]) {
        const p = path.join(dir, f)
        if (statSync(p).isFile()) expect(readFileSync(p, 'latin1').includes(MARKER), p).toBe(false)
      }
    }
    expect(statSync(path.join(state, 'secrets.vault')).mode & 0o777).toBe(0o600)
    expect(statSync(path.join(state, 'master.key')).mode & 0o777).toBe(0o600)

    // Positive control: --reveal is the one way out, so the grep above could have found it.
    const revealed = run(['secrets', 'get', 'marker', '--reveal'], { keep: false })
    expect(revealed.stdout.trim()).toBe(MARKER)
  })

  it('exit codes: missing secret 3, no value 2, wrong master key 9 with the vault untouched, tampered vault 11', { timeout: 180_000 }, () => {
    expect(run(['secrets', 'get', 'nope', '--json']).code).toBe(3)
    expect(run(['secrets', 'set', 'x', '--json']).json.error!.code).toBe('E_SECRET_NO_VALUE')
    const before = readFileSync(path.join(state, 'secrets.vault'))
    const wrong = run(['secrets', 'list', '--json'], { env: { MAGFLOCK_MASTER_KEY: 'a'.repeat(64) } })
    expect(wrong.code).toBe(9)
    expect(wrong.json.error!.code).toBe('E_VAULT_WRONG_KEY')
    expect(run(['secrets', 'set', 'y', '--generate'], { env: { MAGFLOCK_MASTER_KEY: 'a'.repeat(64) } }).code).toBe(9)
    expect(readFileSync(path.join(state, 'secrets.vault')).equals(before)).toBe(true)
    const f = JSON.parse(before.toString('utf8')) as { data: string }
    const data = Buffer.from(f.data, 'base64')
    data[data.length - 1] = data[data.length - 1]! ^ 0xff
    writeFileSync(path.join(state, 'secrets.vault'), JSON.stringify({ ...f, data: data.toString('base64') }))
    const t = run(['secrets', 'get', 'marker', '--json'])
    expect(t.code).toBe(11)
    expect(t.json.error!.code).toBe('E_VAULT_TAMPERED')
  })
})
