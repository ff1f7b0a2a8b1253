import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isOurPostmaster, isProcessAlive, isProcessAliveSync, parsePostmasterPid, processesInDataDir, readPostmasterPid } from '../../../src/postgres/pidfile.js'

const SAMPLE = ['12345', '/var/lib/mf/instances/primary/data', '1764110000', '5433', '/var/lib/mf/instances/primary', '127.0.0.1', '  5432001     32768', 'ready   ', ''].join('\n')

describe('postgres/pidfile', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-pidfile-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('parses every line of postmaster.pid, trimming the padded status', () => {
    expect(parsePostmasterPid(SAMPLE)).toEqual({
      pid: 12345,
      dataDir: '/var/lib/mf/instances/primary/data',
      startedAt: 1764110000,
      port: 5433,
      socketDir: '/var/lib/mf/instances/primary',
      listen: '127.0.0.1',
      status: 'ready',
    })
  })

  it('treats a half-written or empty file as absent', () => {
    expect(parsePostmasterPid('')).toBeUndefined()
    expect(parsePostmasterPid('abc\n')).toBeUndefined()
    expect(parsePostmasterPid('77\n/d\n')).toMatchObject({ pid: 77, status: '', port: 0 })
  })

  it('reads the file from a data dir, undefined when missing', async () => {
    expect(await readPostmasterPid(dir)).toBeUndefined()
    writeFileSync(path.join(dir, 'postmaster.pid'), SAMPLE)
    expect((await readPostmasterPid(dir))?.pid).toBe(12345)
  })

  it('knows live from dead PIDs', async () => {
    expect(await isProcessAlive(process.pid)).toBe(true)
    expect(await isProcessAlive(4194399)).toBe(false)
    expect(await isProcessAlive(0)).toBe(false)
    expect(isProcessAliveSync(process.pid)).toBe(true)
    expect(isProcessAliveSync(4194399)).toBe(false)
  })

  it('counts an unreaped (zombie) child as dead, though kill(pid, 0) still succeeds', () => {
    const child = spawn('sh', ['-c', 'exit 0'], { stdio: 'ignore' })
    const pid = child.pid!
    // Wait synchronously: without an event-loop turn Node cannot reap the child, so it stays a zombie.
    const state = () => {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3)
    }
    const deadline = Date.now() + 10_000
    while (state() !== 'Z' && Date.now() < deadline) {
      // spin
    }
    expect(state()).toBe('Z')
    expect(() => process.kill(pid, 0)).not.toThrow()
    expect(isProcessAliveSync(pid)).toBe(false)
  })

  it('does not take a live process that is not a postmaster of this data dir for ours, nor list it as Postgres', async () => {
    expect(await isOurPostmaster(process.pid, dir)).toBe(false)
    // A process sitting in the data dir (an operator's shell would) whose argv[0] is not postgres:
    // callers signal what processesInDataDir returns, so it must not be there.
    const child = spawn('sleep', ['30'], { cwd: dir, stdio: 'ignore' })
    try {
      await new Promise((r) => child.once('spawn', r))
      expect(await processesInDataDir(dir)).toEqual([])
      expect(await isOurPostmaster(child.pid!, dir)).toBe(false)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
