import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listBackups } from '../../src/backup/manifest.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { waitFor } from '../helpers/wait.js'

/** Needs the built CLI (npm run build), like the other chaos tests. */

describe('chaos: kill -9 of the kernel mid-backup', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const c = await f.connect()
    await c.query('create database app')
    await c.end()
    const a = await f.connect('app')
    await a.query('create table t(x int); insert into t select generate_series(1, 1000)')
    await a.end()
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('the half-written backup is never listed as restorable and the next kernel removes it', async () => {
    // Hold a lock so pg_dump blocks inside the backup, then kill the kernel under it.
    const locker = await f.connect('app')
    await locker.query('begin; lock table t in access exclusive mode')
    const create = execa(NODE, [RUN_JS, 'backup', 'create', '--type', 'logical', '--db', 'app', '--json'], {
      cwd: f.projectDir,
      env: f.env,
      reject: false,
    })
    await waitFor('a .partial backup dir', async () => {
      const { readdirSync } = await import('node:fs')
      return readdirSync(f.layout.backupsDir).some((n) => n.endsWith('.partial'))
    })
    const info = await readKernelInfo(f.layout)
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid))
    await locker.query('rollback')
    await locker.end()
    const cr = await create
    expect(cr.exitCode).not.toBe(0)

    // Left behind: a half-written backup, never listed as complete (no kernel runs: read the dir).
    const left = await listBackups(f.layout.backupsDir)
    expect(left.complete).toEqual([])
    expect(left.incomplete.map((i) => i.state)).toEqual(['interrupted'])
    const id = left.incomplete[0]!.id
    // The next kernel removes it at boot: `backup list` does not show it forever.
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const l = await f.run<{ backups: unknown[]; incomplete: Array<{ id: string; state: string }> }>(['backup', 'list', '--json'])
    expect(l.json?.ok).toBe(true)
    if (!l.json?.ok) return
    expect(l.json.data.backups).toEqual([])
    expect(l.json.data.incomplete).toEqual([])
    const r = await f.run(['backup', 'restore', id, '--to-db', 'x', '--json'])
    expect(r.json?.ok === false && r.json.error.code).toBe('E_BACKUP_NOT_FOUND')
  })
})
