import { describe, expect, it } from 'vitest'
import net from 'node:net'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { MAX_SOCKET_PATH, socketPathFor, stateLayout } from '../../../src/platform/paths.js'
import { removeStaleSocket } from '../../../src/kernel/server.js'
import { tempDir } from '../../helpers/tmp.js'

describe('socketPathFor', () => {
  it('keeps the socket in the state dir when the path fits', () => {
    expect(socketPathFor('/srv/flock/.magflock', {})).toBe('/srv/flock/.magflock/magflock.sock')
  })

  it('falls back to a short, stable path under XDG_RUNTIME_DIR or /tmp when it would not fit', () => {
    const long = '/srv/' + 'x'.repeat(120) + '/.magflock'
    const a = socketPathFor(long, { XDG_RUNTIME_DIR: '/run/user/1000' })
    expect(a.startsWith('/run/user/1000/magflock-')).toBe(true)
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(MAX_SOCKET_PATH)
    expect(socketPathFor(long, { XDG_RUNTIME_DIR: '/run/user/1000' })).toBe(a)
    expect(socketPathFor(long + '2', { XDG_RUNTIME_DIR: '/run/user/1000' })).not.toBe(a)
    expect(socketPathFor(long, {}).startsWith('/tmp/magflock-')).toBe(true)
    expect(stateLayout(long).socket.length).toBeLessThanOrEqual(MAX_SOCKET_PATH)
  })
})

describe('removeStaleSocket', () => {
  it('removes a socket file nobody answers on, and refuses one a live process serves', async () => {
    const t = tempDir()
    try {
      const sock = path.join(t.dir, 's.sock')
      expect(await removeStaleSocket(sock)).toBe('absent')
      const srv = net.createServer()
      await new Promise<void>((r) => srv.listen(sock, () => r()))
      await expect(removeStaleSocket(sock)).rejects.toMatchObject({ code: 'E_SOCKET_IN_USE' })
      // Simulate a kill -9 leftover: a plain file where the socket was.
      await new Promise<void>((r) => srv.close(() => r()))
      writeFileSync(sock, '')
      expect(await removeStaleSocket(sock)).toBe('removed')
      expect(existsSync(sock)).toBe(false)
    } finally {
      t.cleanup()
    }
  })
})
