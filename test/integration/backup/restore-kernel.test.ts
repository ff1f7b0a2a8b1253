import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listArchive } from '../../../src/backup/wal.js'
import { isProcessAliveSync } from '../../../src/platform/pids.js'
import { createFlock, type Flock } from '../../helpers/flock.js'
import { waitFor } from '../../helpers/wait.js'
import { FIRST_INSTANCE } from '../../../src/daemon/instances.js'

/**
 * Restores through the built CLI against a real kernel: in place over the primary (plain and
 * PITR), as a supervised standalone copy, and one database to a point in time.
 */

interface Restored {
  id: string
  kind: string
  target: string
  port: number | null
  dataDir: string | null
  pitr: boolean
  role: string | null
  previousDataDir: string | null
  sourceDb: string | null
}
interface StatusJson {
  instances: Array<{ name: string; role: string; state: string; pid: number | null; port: number; restarts: number; adopted: boolean }>
  primaryUrl: string | null
}

describe('backup restore through the CLI: in place, standalone copies, one database at a time', { timeout: 240_000 }, () => {
  let f: Flock

  const sql = <T = Record<string, unknown>>(db: string, text: string) => f.sql<T>(db, text)
  async function backup(): Promise<string> {
    const r = await f.run<{ id: string }>(['backup', 'create', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    return (r.json as { data: { id: string } }).data.id
  }
  /** Closes the current segment and waits until the archive has it, so PITR can reach it. */
  async function archiveNow(): Promise<void> {
    const l = (await sql<{ l: string }>('postgres', 'select pg_switch_wal()::text as l'))[0]!.l
    const { waitForArchived } = await import('../../../src/backup/archiver.js')
    await waitForArchived(f.layout.walDir, l, 60_000)
  }
  async function now(): Promise<string> {
    return (await sql<{ t: string }>('postgres', `select now()::text as t`))[0]!.t
  }
  /** A backup of an empty t, then 'first', a target time, then 'second' (both archived). */
  async function backupThenTwoWrites(): Promise<{ id: string; target: string }> {
    await sql('app', 'truncate t')
    const id = await backup()
    await sql('app', `insert into t values ('first')`)
    await archiveNow()
    const target = await now()
    await new Promise((r) => setTimeout(r, 1100))
    await sql('app', `insert into t values ('second')`)
    await archiveNow()
    return { id, target }
  }
  async function status(): Promise<StatusJson> {
    const r = await f.run<StatusJson>(['status', '--json'])
    expect(r.json?.ok, r.stdout + r.stderr).toBe(true)
    return (r.json as { data: StatusJson }).data
  }

  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    await sql('postgres', 'create database app')
    await sql('postgres', 'create database other')
    await sql('app', `create table t(v text)`)
    await sql('other', `create table o(v text); insert into o values ('untouched')`)
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('in place without --force is refused and the primary keeps running untouched', async () => {
    await sql('app', `insert into t values ('A')`)
    const id = await backup()
    const pid = await f.postmasterPid()
    const r = await f.run(['backup', 'restore', id, '--json'])
    expect(r.exitCode).toBe(5)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_INPLACE_NEEDS_FORCE', hint: expect.stringContaining('--force') } })
    const named = await f.run(['backup', 'restore', id, '--to-instance', FIRST_INSTANCE, '--json'])
    expect(named.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_INPLACE_NEEDS_FORCE' } })
    expect(await f.postmasterPid()).toBe(pid)
    expect(readdirSync(f.layout.instanceDir(FIRST_INSTANCE)).filter((n) => n.includes('pre-restore'))).toEqual([])
    expect((await sql('app', 'select v from t')).map((x) => x.v)).toEqual(['A'])
  })

  it('in place with --force: back to the backup, old data dir kept aside, supervised, archiver streams the new timeline', async () => {
    await sql('app', 'truncate t')
    await sql('app', `insert into t values ('A')`)
    const id = await backup()
    await sql('app', `insert into t values ('B')`)
    const r = await f.run<Restored>(['backup', 'restore', id, '--force', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const d = (r.json as { data: Restored }).data
    expect(d).toMatchObject({ kind: 'instance', target: FIRST_INSTANCE, role: 'primary', pitr: false, port: f.pgPort })
    expect(d.previousDataDir).toMatch(/data\.pre-restore-\d{8}T\d{6}Z$/)
    expect(existsSync(path.join(d.previousDataDir!, 'PG_VERSION'))).toBe(true)
    expect((await sql('app', 'select v from t order by v')).map((x) => x.v)).toEqual(['A'])
    // Writable, on a new timeline, with the instance's own settings (not the restore-only ones).
    await sql('app', `insert into t values ('C')`)
    const [s] = await sql<{ tli: number; cluster: string; sync: string }>(
      'postgres',
      `select (select timeline_id from pg_control_checkpoint()) as tli, current_setting('cluster_name') as cluster, current_setting('synchronous_standby_names') as sync`,
    )
    expect(s!.tli).toBeGreaterThan(1)
    expect(s!.cluster).not.toBe('magflock-restore')
    const auto = readFileSync(path.join(f.layout.dataDir(FIRST_INSTANCE), 'postgresql.auto.conf'), 'utf8')
    expect(auto).not.toMatch(/restore_command|recovery_target/)

    // The WAL archiver picks up on the new timeline (slot re-created, segments with the new TLI).
    await sql('postgres', 'checkpoint')
    await sql('postgres', 'select pg_switch_wal()')
    await waitFor('a full segment of the new timeline in the archive', async () => {
      const segs = await listArchive(f.layout.walDir)
      return segs.some((x) => x.tli >= 2 && !x.partial) || undefined
    })
    expect((await sql('postgres', `select 1 from pg_replication_slots where slot_name = 'magflock_wal_archive'`)).length).toBe(1)

    // Still supervised: kill -9 of the postmaster → restarted.
    const pid = (await f.postmasterPid())!
    process.kill(pid, 'SIGKILL')
    await waitFor('the primary to be restarted', async () => {
      const p = await f.postmasterPid()
      return p !== undefined && p !== pid && isProcessAliveSync(p) && (await sql('app', 'select count(*)::int as n from t'))[0]!.n === 2
    })
    const audit = readFileSync(f.layout.auditLog, 'utf8')
    expect(audit).toContain('backup.restore')
    expect(audit).toContain('pre-restore')
  })

  it('in place to a point in time between two writes', async () => {
    const { id, target } = await backupThenTwoWrites()
    const r = await f.run<Restored>(['backup', 'restore', id, '--force', '--target-time', target, '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect((r.json as { data: Restored }).data).toMatchObject({ role: 'primary', pitr: true })
    expect((await sql('app', 'select v from t')).map((x) => x.v)).toEqual(['first'])
    await sql('app', `insert into t values ('after')`)
  })

  it('--to-instance: a standalone copy the kernel supervises, listed by status, removed by instance remove', async () => {
    const id = await backup()
    const r = await f.run<Restored>(['backup', 'restore', id, '--to-instance', 'copy1', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const d = (r.json as { data: Restored }).data
    expect(d).toMatchObject({ kind: 'instance', target: 'copy1', role: 'standalone', previousDataDir: null })
    let st = await status()
    const copy = st.instances.find((i) => i.name === 'copy1')
    expect(copy).toMatchObject({ role: 'standalone', state: 'running', port: d.port })
    // Never part of the flock's routing URL.
    expect(st.primaryUrl).not.toContain(`:${d.port}`)
    const topo = JSON.parse(readFileSync(path.join(f.stateDir, 'topology.json'), 'utf8')) as { instances: Array<{ name: string; role: string }> }
    expect(topo.instances).toContainEqual(expect.objectContaining({ name: 'copy1', role: 'standalone' }))

    const pid = (await f.postmasterPid('copy1'))!
    process.kill(pid, 'SIGKILL')
    await waitFor('copy1 to be restarted', async () => {
      const s = (await status()).instances.find((i) => i.name === 'copy1')
      return (s?.state === 'running' && s.pid !== pid && s.restarts >= 1) || undefined
    })

    // Re-adopted (not restarted) by the next kernel, still standalone.
    const stop = await f.run(['kernel', 'stop', '--json'])
    expect(stop.exitCode, stop.stdout + stop.stderr).toBe(0)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    expect((await status()).instances.find((i) => i.name === 'copy1')).toMatchObject({ role: 'standalone', state: 'running', adopted: true })

    const wrong = await f.run(['instance', 'remove', FIRST_INSTANCE, '--json'])
    expect(wrong.json).toMatchObject({ ok: false, error: { code: 'E_INSTANCE_NOT_STANDALONE' } })
    const rm = await f.run(['instance', 'remove', 'copy1', '--json'])
    expect(rm.exitCode, rm.stdout + rm.stderr).toBe(0)
    st = await status()
    expect(st.instances.map((i) => i.name)).toEqual([FIRST_INSTANCE])
    expect(existsSync(f.layout.instanceDir('copy1'))).toBe(false)
  })

  it('one database to a point in time: first write present, second absent, others untouched, temp instance gone', async () => {
    const { id, target } = await backupThenTwoWrites()

    // An existing target without --force: refused before anything runs; app untouched.
    const refused = await f.run(['backup', 'restore', id, '--to-db', 'app', '--target-time', target, '--json'])
    expect(refused.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_TARGET_EXISTS' } })

    const r = await f.run<Restored>(['backup', 'restore', id, '--to-db', 'app_before', '--db', 'app', '--target-time', target, '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect((r.json as { data: Restored }).data).toMatchObject({ kind: 'database', target: 'app_before', sourceDb: 'app', pitr: true, role: null })
    expect((await sql('app_before', 'select v from t')).map((x) => x.v)).toEqual(['first'])
    expect((await sql('app', 'select v from t order by v')).map((x) => x.v)).toEqual(['first', 'second'])
    expect((await sql('other', 'select v from o')).map((x) => x.v)).toEqual(['untouched'])
    expect(readdirSync(path.join(f.stateDir, 'tmp'))).toEqual([])
    expect((await status()).instances.map((i) => i.name)).toEqual([FIRST_INSTANCE])

    // With --force the named database itself is replaced.
    const forced = await f.run<Restored>(['backup', 'restore', id, '--to-db', 'app', '--target-time', target, '--force', '--json'])
    expect(forced.exitCode, forced.stdout + forced.stderr).toBe(0)
    expect((await sql('app', 'select v from t')).map((x) => x.v)).toEqual(['first'])
    const audit = readFileSync(f.layout.auditLog, 'utf8')
    expect(audit).toContain('app_before')
  })
})
