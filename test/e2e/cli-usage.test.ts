import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from '../helpers/cli.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * Usage mistakes and config mistakes through the BUILT CLI (npm run build first): no kernel,
 * no Postgres. Each case checks the human output (stderr) and the --json envelope.
 */
let tmp: ReturnType<typeof tempDir>
let cwd: string
const env = () => ({ MAGFLOCK_STATE_DIR: path.join(tmp.dir, 'state'), MAGFLOCK_PREFS_DIR: path.join(tmp.dir, 'prefs'), HOME: tmp.dir })
const run = (args: string[], extra: Record<string, string> = {}) => cli(args, { cwd, env: { ...env(), ...extra } })

beforeAll(() => {
  tmp = tempDir('mf-usage-')
  cwd = tmp.dir
})
afterAll(() => tmp.cleanup())

describe('magflock usage errors', () => {
  it('shows a parse error whole (the missing arguments by name) as E_USAGE with a hint naming the command', async () => {
    const h = await run(['config', 'set'])
    expect(h.exitCode).toBe(2)
    expect(h.stderr).toContain('Error [E_USAGE]: Missing 2 required args:')
    expect(h.stderr).toMatch(/^key\s+Dotted key/m)
    expect(h.stderr).toMatch(/^value\s+New value/m)
    // Hints name the CLI the way it was invoked (here `node bin/run.js`, see src/cli/invocation.ts).
    expect(h.stderr).toMatch(/Hint: `[^`]*config set --help` shows its arguments/)
    const j = await run(['config', 'set', '--json'])
    expect(j.exitCode).toBe(2)
    expect(j.json).toEqual({
      ok: false,
      error: {
        code: 'E_USAGE',
        class: 'invalid_argument',
        message: expect.stringMatching(/^Missing 2 required args:\nkey\s+Dotted key.*\nvalue\s+New value/s),
        hint: expect.stringContaining('magflock config set --help'),
      },
    })
  })

  it('answers an unknown command with E_USAGE, exit 2 and "did you mean"', async () => {
    const h = await run(['stauts'])
    expect(h.exitCode).toBe(2)
    expect(h.stderr).toContain('Error [E_USAGE]: "stauts" is not a magflock command. Did you mean "status"?')
    expect(h.stderr).toContain('Hint: ')
    expect(h.stderr).not.toContain('›')
    const j = await run(['stauts', '--json'])
    expect(j.exitCode).toBe(2)
    expect(j.json).toMatchObject({ ok: false, error: { code: 'E_USAGE', class: 'invalid_argument', message: expect.stringContaining('Did you mean "status"?'), hint: expect.any(String) } })
  })

  it('suggests within a topic and points at the topic when nothing is close', async () => {
    const near = await run(['db', 'craete', '--json'])
    expect(near.exitCode).toBe(2)
    expect(near.json).toMatchObject({ ok: false, error: { code: 'E_USAGE', message: expect.stringContaining('Did you mean "db create"?') } })
    const far = await run(['db', 'zzzzzz'])
    expect(far.exitCode).toBe(2)
    expect(far.stderr).toContain('E_USAGE')
    expect(far.stderr).toContain('`magflock db --help`')
  })

  it('a flag where the command should be is E_USAGE, not an unknown command', async () => {
    const r = await run(['--bogus', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_USAGE', message: 'Nonexistent flag: --bogus' } })
  })

  it('suggests a topic for a mistyped topic name', async () => {
    const r = await run(['confg'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('Did you mean "config"?')
    expect(r.stderr).toContain('`magflock config --help`')
  })

  it('an extra argument to a command without arguments is E_USAGE naming that command', async () => {
    const r = await run(['status', 'extra', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_USAGE', message: 'Unexpected argument: extra', hint: expect.stringContaining('magflock status --help') } })
  })

  it('--help lists up once, as a command and not as a topic', async () => {
    const r = await run(['--help'])
    expect(r.exitCode).toBe(0)
    const topics = r.stdout.slice(r.stdout.indexOf('TOPICS'), r.stdout.indexOf('COMMANDS'))
    const commands = r.stdout.slice(r.stdout.indexOf('COMMANDS'))
    expect(topics).toContain('backup')
    expect(topics).not.toMatch(/^\s+up\s/m)
    expect(commands).toMatch(/^\s+up\s/m)
  })

  it('a reader that closes the pipe early gets no Node warning and exit 0 (`magflock --help | head -1`)', async () => {
    const { spawn } = await import('node:child_process')
    const { NODE, RUN_JS } = await import('../helpers/cli.js')
    for (const args of [['--help'], ['help', 'status'], ['--version']]) {
      const child = spawn(NODE, [RUN_JS, ...args], { cwd, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] })
      // The read end closes before the CLI writes anything: its first write fails with EPIPE.
      child.stdout.destroy()
      let stderr = ''
      child.stderr.on('data', (d: Buffer) => (stderr += String(d)))
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
      expect({ args, code, stderr }).toEqual({ args, code: 0, stderr: '' })
    }
  })

  it('still serves the help and autocomplete plugins (bin/run.js loads plugins only for calls that may need them)', async () => {
    const list = await run(['--help'])
    expect(list.exitCode).toBe(0)
    const commands = list.stdout.slice(list.stdout.indexOf('COMMANDS'))
    expect(commands).toMatch(/^\s+help\s/m)
    expect(commands).toMatch(/^\s+autocomplete\s/m)

    const help = await run(['help', 'status'])
    expect(help.exitCode).toBe(0)
    expect(help.stdout).toContain('$ magflock status')

    const ac = await run(['autocomplete', 'script', 'bash'])
    expect(ac.exitCode).toBe(0)
    expect(ac.stdout).toContain('MAGFLOCK_AC_BASH_SETUP_PATH')

    const version = await run(['--version'])
    expect(version.exitCode).toBe(0)
    expect(version.stdout).toMatch(/^magflock\/\d+\.\d+\.\d+ /)
  })
})

describe('magflock config through the CLI', () => {
  const file = () => path.join(cwd, 'magflock.yaml')

  it('config set refuses an invalid value while MAGFLOCK_POSTGRES__PORT overrides the key, and changes nothing', async () => {
    writeFileSync(file(), 'postgres:\n  port: 5544\n')
    const r = await run(['config', 'set', 'postgres.port', 'abc', '--json'], { MAGFLOCK_POSTGRES__PORT: '6000' })
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_CONFIG_INVALID', message: expect.stringContaining('postgres.port: expected an integer 1–65535, got "abc" (magflock.yaml:2)') } })
    expect(readFileSync(file(), 'utf8')).toBe('postgres:\n  port: 5544\n')
  })

  it('config validate rejects an invalid file even when a variable overrides the bad key', async () => {
    writeFileSync(file(), 'postgres:\n  port: abc\n')
    const r = await run(['config', 'validate'], { MAGFLOCK_POSTGRES__PORT: '6000' })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('E_CONFIG_INVALID')
    expect(r.stderr).toContain('(magflock.yaml:2)')
  })

  it('config validate rejects an unknown key with an empty value', async () => {
    writeFileSync(file(), 'postgres:\n  port: 5544\nbogus:\n')
    const r = await run(['config', 'validate', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_CONFIG_INVALID', details: { problems: [{ path: 'bogus', problem: 'unknown key', where: 'magflock.yaml:3' }] } } })
  })

  it('an unusual magflock.yaml (a list as a key) is a clear error and no Node warning reaches the user', async () => {
    writeFileSync(file(), '? [a, b]\n: c\n')
    const r = await run(['config', 'validate'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('E_CONFIG_SYNTAX')
    expect(r.stderr).not.toMatch(/Warning|DeprecationWarning|\(node:\d+\)/)
  })

  it('config validate refuses a magflock.yaml over 1 MiB with E_CONFIG_TOO_LARGE', async () => {
    writeFileSync(file(), 'flock: big\n' + '#'.repeat(1024 * 1024) + '\n')
    const r = await run(['config', 'validate', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_CONFIG_TOO_LARGE', hint: expect.any(String) } })
  })
})
