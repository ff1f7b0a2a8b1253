import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { removeStaleSocketLock } from '../../../src/postgres/pidfile.js'
import { tempDir } from '../../helpers/tmp.js'

describe('removeStaleSocketLock', () => {
  const dirs: Array<{ cleanup: () => void }> = []
  afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()))
  const lockIn = (pid: number) => {
    const d = tempDir('mf-sock-')
    dirs.push(d)
    const lock = path.join(d.dir, '.s.PGSQL.5999.lock')
    writeFileSync(lock, `${pid}\n${d.dir}\n`)
    return { dir: d.dir, lock }
  }

  it('removes a lock whose PID is gone', async () => {
    const { dir, lock } = lockIn(2 ** 22 + 12345)
    expect(await removeStaleSocketLock(dir, 5999)).toBe(true)
    expect(existsSync(lock)).toBe(false)
  })

  it('keeps a lock held by a live process, so Postgres still refuses a real conflict', async () => {
    const { dir, lock } = lockIn(process.pid)
    expect(await removeStaleSocketLock(dir, 5999)).toBe(false)
    expect(existsSync(lock)).toBe(true)
  })

  it('does nothing without a socket dir or a lock', async () => {
    expect(await removeStaleSocketLock('', 5999)).toBe(false)
    const { dir } = lockIn(process.pid)
    expect(await removeStaleSocketLock(dir, 6000)).toBe(false)
  })
})
