import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusOutput } from '../../src/api/core.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The local WAL archive (the cache in front of the object stores) fills its filesystem: a real
 * small filesystem, a 40 MiB tmpfs mounted (as root) over `<state>/wal` (two 16 MiB segments
 * fit), grown afterwards with `mount -o remount,size=…` and unmounted at the end. Expected:
 * the wal-archiver says E_WAL_ARCHIVE_NO_SPACE with the path and a hint, Postgres keeps taking
 * writes, the replication slot keeps the WAL, and once there is room again archiving resumes
 * by itself and the archive holds every segment, none skipped. Needs the built CLI.
 */
describe('chaos: the local WAL archive runs out of disk space', { timeout: 240_000 }, () => {
  let f: Flock
  let mounted = false

  const archiver = async (): Promise<StatusOutput['components'][number] | undefined> => {
    const s = await f.run<StatusOutput>(['status', '--json'])
    return s.json?.ok ? s.json.data.components.find((c) => c.name === 'wal-archiver') : undefined
  }
  /** Writes a little and closes the current segment; returns the name of the segment closed. */
  const switchSegment = async (): Promise<string> => {
    await f.sql('postgres', 'insert into t select g, md5(g::text) from generate_series(1, 20000) g')
    const [r] = await f.sql<{ name: string }>('postgres', 'select pg_walfile_name(pg_current_wal_lsn()) as name')
    await f.sql('postgres', 'select pg_switch_wal()')
    return r!.name
  }
  const archived = () => (existsSync(f.layout.walDir) ? readdirSync(f.layout.walDir) : [])

  beforeAll(async () => {
    f = await createFlock()
    mkdirSync(f.layout.walDir, { recursive: true })
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m,mode=0700', 'tmpfs', f.layout.walDir])
    mounted = true
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    await f.sql('postgres', 'create table t (g int, pad text)')
  })
  afterAll(async () => {
    await f?.run(['down', '--json']).catch(() => undefined)
    if (mounted) execFileSync('umount', ['-l', f.layout.walDir])
    await f?.destroy()
  })

  it('says E_WAL_ARCHIVE_NO_SPACE, Postgres keeps running, and the archive catches up with no gap once there is room', async () => {
    // Fill it: each closed segment takes 16 MiB of the 40.
    const closed: string[] = []
    const a = await waitFor(
      'the archiver to report the full filesystem',
      async () => {
        closed.push(await switchSegment())
        const c = await archiver()
        return c?.detail?.includes('E_WAL_ARCHIVE_NO_SPACE') ? c : undefined
      },
      120_000,
      500,
    )
    expect(a.healthy).toBe(false)
    expect(a.detail).toContain(f.layout.walDir)
    expect(a.detail).toMatch(/Free space/)
    expect(a.state).toBe('running') // waiting for room, not a crash loop

    // Postgres takes writes meanwhile, and the slot holds the WAL not yet archived.
    for (let i = 0; i < 3; i++) closed.push(await switchSegment())
    const [slot] = await f.sql<{ restart_lsn: string | null }>('postgres', "select restart_lsn::text from pg_replication_slots where slot_name = 'magflock_wal_archive'")
    expect(slot?.restart_lsn).toBeTruthy()
    const last = closed[closed.length - 1]!
    expect(archived()).not.toContain(last)

    // Room again: archiving resumes by itself and every closed segment arrives.
    execFileSync('mount', ['-o', 'remount,size=300m', f.layout.walDir])
    await waitFor('the archive to catch up', async () => archived().includes(last), 120_000, 500)
    const have = new Set(archived())
    const missing = closed.filter((s) => !have.has(s))
    expect(missing).toEqual([])
    await waitFor('the archiver to be healthy again', async () => (await archiver())?.healthy === true, 60_000, 500)
  })
})
