import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusOutput } from '../../src/api/core.js'
import { listBackups } from '../../src/backup/manifest.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { postgresRunAs } from '../../src/platform/os-user.js'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { toolsUnder } from '../helpers/procs.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Issue 10, item 7: helpers die with the kernel, and the next kernel cleans what a killed one
 * left (half backups, an orphaned pg_receivewal holding the archive slot). Needs the built CLI.
 */
describe('chaos: kill -9 of the kernel while helpers run', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    // Enough data that pg_basebackup is caught running.
    await f.sql('postgres', "create table filler as select g, md5(g::text) || md5(random()::text) as pad from generate_series(1, 1000000) g")
  })
  afterAll(async () => {
    await f?.destroy()
  })

  async function archiver(): Promise<StatusOutput['components'][number] | undefined> {
    const s = await f.run<StatusOutput>(['status', '--json'])
    return s.json?.ok ? s.json.data.components.find((c) => c.name === 'wal-archiver') : undefined
  }

  it('no pg_basebackup or pg_receivewal survives the kernel; the next kernel removes the half backup and archives', { timeout: 120_000 }, async () => {
    const info = await readKernelInfo(f.layout)
    // Every wait below is bounded under the test's own timeout, so a hang names its step.
    const create = execa(NODE, [RUN_JS, 'backup', 'create', '--type', 'physical', '--json'], { cwd: f.projectDir, env: f.env, reject: false, timeout: 30_000 })
    // The kernel's own child. pg_basebackup forks a WAL-streaming child of its own, which no
    // parent-death signal reaches: it can outlive a killed kernel (up to a minute here) until
    // the next kernel reaps it at boot, so it is checked after `up`, not at the kernel's death.
    const mine = () => toolsUnder('pg_basebackup', f.layout.backupsDir).filter((p) => p.ppid === info!.pid)
    await waitFor('pg_basebackup running', async () => mine().length > 0, 60_000, 2)
    const basebackups = mine()
    // Frozen, so it cannot finish on its own before the kernel dies; SIGKILL still ends it.
    for (const p of basebackups) process.kill(p.pid, 'SIGSTOP')
    const receivers = toolsUnder('pg_receivewal', f.layout.walDir)
    expect(receivers.length).toBe(1)
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid), 20_000)
    const created = await create
    expect(created.timedOut, 'backup create still running 30 s after its kernel died').toBe(false)
    expect(created.exitCode).not.toBe(0)
    await waitFor('helpers to die with the kernel', async () => [...basebackups, ...receivers].every((p) => !isProcessAliveSync(p.pid)), 10_000)
    expect(toolsUnder('pg_receivewal', f.layout.root)).toEqual([])

    // Left behind: a half-written backup (no kernel is running to be asked; read the dir).
    expect((await listBackups(f.layout.backupsDir)).incomplete.map((i) => i.state)).toEqual(['interrupted'])
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    // The next kernel killed whatever helper of this flock was left before its components started.
    expect(toolsUnder('pg_basebackup', f.layout.root)).toEqual([])
    const after = await f.run<{ incomplete: unknown[] }>(['backup', 'list', '--json'])
    expect(after.json?.ok && after.json.data.incomplete).toEqual([])
    await waitFor('the archiver streaming', async () => (await archiver())?.state === 'running', 30_000)
    const a = await archiver()
    expect(a?.restarts).toBe(0)
    expect(a?.healthy).toBe(true)
  })

  it('an orphaned pg_receivewal holding the archive slot is reaped by the next kernel', { timeout: 120_000 }, async () => {
    const stop = await f.run(['kernel', 'stop', '--json'])
    expect(stop.exitCode, stop.stdout + stop.stderr).toBe(0)
    // A receiver no kernel owns (as a kernel without a parent-death signal would leave it).
    const runAs = postgresRunAs()
    const passfile = path.join(f.projectDir, 'orphan.pgpass')
    writeFileSync(passfile, `*:*:*:*:${await f.superuserPassword()}\n`, { mode: 0o600 })
    if (runAs) (await import('node:fs')).chownSync(passfile, runAs.uid, runAs.gid)
    const orphan = execa(findPgBinaries().tool('pg_receivewal'), ['-D', f.layout.walDir, '-S', 'magflock_wal_archive', '--no-loop', '-h', '127.0.0.1', '-p', String(f.pgPort), '-U', 'postgres'], {
      env: { PGPASSFILE: passfile },
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      cwd: '/tmp',
      reject: false,
      detached: true,
    })
    await waitFor('the orphan to hold the slot', async () => {
      const rows = await f.sql<{ active: boolean }>('postgres', "select active from pg_replication_slots where slot_name = 'magflock_wal_archive'")
      return rows[0]?.active === true
    }, 20_000)
    const start = await f.run(['kernel', 'start', '--json'])
    expect(start.exitCode, start.stdout + start.stderr).toBe(0)
    await waitFor('the orphaned pg_receivewal to be reaped', async () => !isProcessAliveSync(orphan.pid!), 20_000)
    await orphan
    await waitFor('the archiver streaming', async () => (await archiver())?.state === 'running', 20_000)
    // It keeps streaming: no restart loop on "slot is active".
    await new Promise((r) => setTimeout(r, 3000))
    const a = await archiver()
    expect(a?.state).toBe('running')
    expect(a?.restarts).toBe(0)
    const holder = await f.sql<{ pid: number }>('postgres', "select active_pid as pid from pg_replication_slots where slot_name = 'magflock_wal_archive'")
    expect(holder[0]?.pid).toBeTypeOf('number')
  })
})
