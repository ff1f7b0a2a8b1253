import { describe, expect, it } from 'vitest'
import path from 'node:path'
import { earlyUpPlan } from '../../../src/cli/early-up.js'

// bin/run.js starts the kernel for `up` before oclif loads only for argument lists the `up`
// command is certain to accept; everything else must go the normal way (oclif refuses it
// before any kernel starts).
describe('earlyUpPlan (the `up` fast path in bin/run.js)', () => {
  const cwd = '/proj'
  const environ = { MAGFLOCK_PREFS_DIR: '/nonexistent-prefs' }

  it('resolves the state dir and env as the up command does', () => {
    expect(earlyUpPlan([], environ, cwd)).toEqual({ stateDir: path.join(cwd, '.magflock'), env: 'development' })
    expect(earlyUpPlan(['--json'], environ, cwd)).toEqual({ stateDir: path.join(cwd, '.magflock'), env: 'development' })
    expect(earlyUpPlan(['--env', 'staging', '--state-dir', 'st'], environ, cwd)).toEqual({ stateDir: path.join(cwd, 'st'), env: 'staging' })
    expect(earlyUpPlan(['--env=prod', '--state-dir=/abs/st', '--json'], environ, cwd)).toEqual({ stateDir: '/abs/st', env: 'prod' })
    expect(earlyUpPlan([], { ...environ, MAGFLOCK_ENV: 'ci', MAGFLOCK_STATE_DIR: 'from-env' }, cwd)).toEqual({ stateDir: path.join(cwd, 'from-env'), env: 'ci' })
    expect(earlyUpPlan(['--env', 'flag'], { ...environ, MAGFLOCK_ENV: 'ci' }, cwd)?.env).toBe('flag')
  })

  it('leaves every other argument list to oclif', () => {
    for (const args of [
      ['--help'],
      ['-h'],
      ['--token', 'x'],
      ['--bogus'],
      ['extra'],
      ['--json', '--json'],
      ['--env'],
      ['--env', ''],
      ['--env', '--json'],
      ['--env=-x'],
      ['--env', 'bad name'],
      ['--env', '../etc'],
      ['--env', 'a', '--env', 'b'],
      ['--state-dir'],
      ['--state-dir='],
      ['--json=true'],
    ]) {
      expect(earlyUpPlan(args, environ, cwd), args.join(' ')).toBeUndefined()
    }
    expect(earlyUpPlan([], { ...environ, MAGFLOCK_ENV: 'no/slash' }, cwd)).toBeUndefined()
  })
})
