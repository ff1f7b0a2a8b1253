import { describe, expect, it } from 'vitest'
import { invokedAs, localizeCommands, shellWord } from '../../../src/cli/invocation.js'

const none = () => undefined
const base = { argv0: 'node', which: none }

describe('invokedAs: printed commands name the CLI the way the user ran it', () => {
  it('the repo-local launcher passes its $0', () => {
    expect(invokedAs({ ...base, env: { MAGFLOCK_INVOKED_AS: './magflock' }, argv: ['/n', '/repo/bin/run.js'] })).toBe('./magflock')
    expect(invokedAs({ ...base, env: { MAGFLOCK_INVOKED_AS: '/my clone/magflock' }, argv: ['/n', '/repo/bin/run.js'] })).toBe(`'/my clone/magflock'`)
  })

  it('plain `magflock` only when that name on PATH is this very CLI', () => {
    const which = (n: string) => (n === 'magflock' ? '/usr/local/bin/magflock' : undefined)
    expect(invokedAs({ ...base, which, env: { MAGFLOCK_INVOKED_AS: '/usr/local/bin/magflock' }, argv: ['/n', '/repo/bin/run.js'] })).toBe('magflock')
    expect(invokedAs({ ...base, which, env: {}, argv: ['/n', '/usr/local/bin/magflock'] })).toBe('magflock')
    expect(invokedAs({ ...base, which, env: { MAGFLOCK_INVOKED_AS: './magflock' }, argv: ['/n', '/repo/bin/run.js'] })).toBe('./magflock')
  })

  it('npx magflock, but not a magflock that npx ran something else around', () => {
    expect(invokedAs({ ...base, env: { npm_command: 'exec', npm_lifecycle_script: 'magflock' }, argv: ['/n', '/repo/bin/run.js'] })).toBe('npx magflock')
    expect(invokedAs({ ...base, env: { npm_command: 'exec', npm_lifecycle_script: 'vitest run' }, argv: ['/n', '/repo/bin/run.js'] })).not.toContain('npx')
  })

  it('node bin/run.js as typed', () => {
    expect(invokedAs({ ...base, env: {}, argv: ['/n', `${process.cwd()}/bin/run.js`] })).toBe('node bin/run.js')
  })
})

describe('localizeCommands', () => {
  const words = new Set(['up', 'db', 'secrets', 'status'])
  it('rewrites command lines only', () => {
    const text = 'Run `magflock db create app`; see magflock.yaml and the magflock daemon. (magflock status)'
    expect(localizeCommands(text, './magflock', words)).toBe('Run `./magflock db create app`; see magflock.yaml and the magflock daemon. (./magflock status)')
    expect(localizeCommands('magflock up', 'npx magflock', words)).toBe('npx magflock up')
    expect(localizeCommands(text, 'magflock', words)).toBe(text)
  })
  it('quotes for the shell only when needed', () => {
    expect(shellWord('/a/b-c.d')).toBe('/a/b-c.d')
    expect(shellWord("it's")).toBe(`'it'\\''s'`)
  })
})
