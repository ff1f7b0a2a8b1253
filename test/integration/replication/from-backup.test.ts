import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs'
import path from 'node:path'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backupCreate } from '../../../src/api/backup.js'
import { status } from '../../../src/api/core.js'
import { replicaAdd } from '../../../src/api/replication.js'
import type { KernelClient } from '../../../src/client/index.js'
import { isMagflockError } from '../../../src/errors/index.js'
import type { RunningKernel } from '../../../src/daemon/boot.js'
import { startKernelFlock, waitFor, type KernelFlock } from './harness.js'

/**
 * `replica add --from-backup`: a physical backup restored locally, the WAL since from the
 * archive, then streaming from a slot. Through a real in-process kernel with its WAL archiver.
 */
describe('replica add --from-backup', () => {
  let f: KernelFlock
  let k: RunningKernel
  let client: KernelClient
  let pgPort: number
  let backupId: string
  const query = <R extends pg.QueryResultRow>(port: number, text: string) => f.query<R>(port, text)
  const slots = async () => (await query<{ slot_name: string }>(pgPort, 'select slot_name from pg_replication_slots order by 1')).map((r) => r.slot_name)
  const names = async () => (await client.call(status, {})).instances.map((i) => i.name).sort()
  const errorOf = (e: unknown) => (isMagflockError(e) ? e.code : String(e))
  /**
   * Fills and switches a few WAL segments, waits until the archiver has them, then checkpoints:
   * a new slot reserves WAL from the last checkpoint's redo point, so these segments can only
   * come from the archive.
   */
  const writeSegments = async (table: string, from: number) => {
    for (let i = 0; i < 3; i++) {
      await query(pgPort, `insert into ${table} select g from generate_series(${from + i * 1000}, ${from + i * 1000 + 999}) g`)
      await query(pgPort, 'select pg_switch_wal()')
    }
    const [{ seg }] = (await query<{ seg: string }>(pgPort, `select pg_walfile_name(pg_current_wal_lsn() - 1) as seg`)) as [{ seg: string }]
    await waitFor('the archiver to hold the switched segments', async () => existsSync(path.join(k.services.layout.walDir, seg)) || existsSync(path.join(k.services.layout.walDir, `${seg}.partial`)), 60_000)
    await query(pgPort, 'checkpoint')
  }

  beforeAll(async () => {
    f = await startKernelFlock('mf-rfb-')
    ;({ k, client, pgPort } = f)
    await query(pgPort, 'create table before_backup(v int); insert into before_backup select generate_series(1, 1000)')
    backupId = (await client.call(backupCreate, { type: 'physical' })).id
    // Written after the backup, in segments the archive must serve to the new replica.
    await query(pgPort, 'create table after_backup(v int)')
    await writeSegments('after_backup', 0)
  }, 180_000)
  afterAll(async () => {
    await f?.stop()
  })

  it('seeds a replica from the latest physical backup; it replays the archived WAL, streams, and sees later writes', async () => {
    const phases: string[] = []
    const r = await client.call(replicaAdd, { name: 'r1', fromBackup: 'latest' }, { onProgress: (e) => phases.push(e.phase) })
    expect(r).toMatchObject({ name: 'r1', role: 'replica', state: 'streaming', source: 'backup', backupId })
    expect(phases).toEqual(expect.arrayContaining(['verify', 'extract', 'start', 'done']))
    expect((await query<{ n: number }>(r.port, 'select count(*)::int as n from after_backup'))[0]?.n).toBe(3000)
    // The WAL written since the backup came from the archive (restore_command), not the primary.
    expect(readFileSync(k.services.layout.instanceLog('r1'), 'utf8')).toMatch(/restored log file "[0-9A-F]{24}" from archive/)
    await query(pgPort, 'insert into after_backup values (-42)')
    await waitFor('the write to reach r1', async () => (await query<{ n: number }>(r.port, 'select count(*)::int as n from after_backup where v = -42'))[0]?.n === 1)
    const senders = await query<{ application_name: string; usename: string }>(pgPort, `select application_name, usename from pg_stat_replication where application_name = 'r1'`)
    expect(senders).toEqual([{ application_name: 'r1', usename: 'magflock_replicator' }])
  })

  it('refuses an unknown backup id, a logical backup and a WAL gap with a clear error, leaving nothing behind', async () => {
    const before = { names: await names(), slots: await slots() }
    const unknown = await client.call(replicaAdd, { name: 'r2', fromBackup: '20990101T000000Z-p-abcdef' }).catch((e: unknown) => e)
    expect(errorOf(unknown)).toBe('E_BACKUP_NOT_FOUND')

    const logical = await client.call(backupCreate, { type: 'logical', db: 'postgres' })
    const bad = await client.call(replicaAdd, { name: 'r2', fromBackup: logical.id }).catch((e: unknown) => e)
    expect(errorOf(bad)).toBe('E_REPLICA_BACKUP_UNUSABLE')

    // A segment written after the backup disappears from the archive: the gap is found.
    await writeSegments('after_backup', 10_000)
    const walDir = k.services.layout.walDir
    const segs = readdirSync(walDir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort()
    const victim = segs[segs.length - 2] as string
    renameSync(path.join(walDir, victim), path.join(f.dir, victim))
    const gap = await client.call(replicaAdd, { name: 'r2', fromBackup: backupId }).catch((e: unknown) => e)
    expect(errorOf(gap)).toBe('E_REPLICA_BACKUP_UNUSABLE')
    expect(isMagflockError(gap) && gap.message).toContain(victim)

    expect(await names()).toEqual(before.names)
    expect(await slots()).toEqual(before.slots)
    expect(existsSync(k.services.layout.instanceDir('r2'))).toBe(false)
  })
})
