import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { childEnv, run, sweepPassfiles, writeTempPassfile } from '../../../src/platform/process.js'

describe('process runner: child environment', () => {
  it('keeps PATH and locale, drops MAGFLOCK_* and everything not allow-listed', () => {
    const env = childEnv({ PGHOST: 'h' }, false, { PATH: '/bin', HOME: '/root', LANG: 'C.UTF-8', LC_ALL: 'C', MAGFLOCK_MASTER_KEY: 'k', MAGFLOCK_TOKEN: 't', AWS_SECRET_ACCESS_KEY: 's', PGPASSWORD: 'p', PGSERVICEFILE: 'x' })
    expect(env).toEqual({ PATH: '/bin', HOME: '/root', LANG: 'C.UTF-8', LC_ALL: 'C', PGHOST: 'h' })
  })

  it('an interactive child keeps the operator environment except MAGFLOCK_* and PGPASSWORD', () => {
    const env = childEnv({}, true, { PATH: '/bin', PAGER: 'less', MAGFLOCK_TOKEN: 't', PGPASSWORD: 'p' })
    expect(env).toEqual({ PATH: '/bin', PAGER: 'less' })
  })

  it('a PGPASSWORD given to the runner reaches the child as a 0600 passfile, never in its environment', async () => {
    const res = await run('sh', ['-c', 'echo "pw=${PGPASSWORD:-unset}"; cat "$PGPASSFILE"; stat -c %a "$PGPASSFILE"'], { env: { PGPASSWORD: 'se:cr\\et' } })
    const [pw, line, mode] = res.stdout.split('\n')
    expect(pw).toBe('pw=unset')
    expect(line).toBe('*:*:*:*:se\\:cr\\\\et')
    expect(mode).toBe('600')
    // removed once the child ended
    expect(readdirPassDirs().filter((d) => d.includes(`-${process.pid}-`))).toEqual([])
  })

  it('sweeps passfiles of dead writers only', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'mf-sweep-'))
    try {
      const dead = path.join(tmp, 'magflock-pass-999999999-abc')
      mkdirSync(dead)
      const mine = writeTempPassfile('x')
      const removed = sweepPassfiles(tmp)
      expect(removed).toEqual([dead])
      expect(existsSync(mine.file)).toBe(true)
      expect(statSync(mine.file).mode & 0o777).toBe(0o600)
      expect(readFileSync(mine.file, 'utf8')).toBe('*:*:*:*:x\n')
      mine.remove()
      expect(existsSync(mine.file)).toBe(false)
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })
})

function readdirPassDirs(): string[] {
  return readdirSync(os.tmpdir()).filter((n) => n.startsWith('magflock-pass-'))
}
