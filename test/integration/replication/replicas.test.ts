import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReplica, removeReplica, setSyncStandbys, switchover, syncStandbyNamesValue } from '../../../src/replication/actions.js'
import { readFence } from '../../../src/replication/fence.js'
import { ensureReplicator } from '../../../src/replication/role.js'
import { clientConfig, type PgNode } from '../../../src/replication/pg.js'
import { primaryStatus, standbyStatus } from '../../../src/replication/status.js'
import { q, startFlock, waitFor, Writer, type Flock } from './harness.js'

describe('replication actions against real Postgres', () => {
  let f: Flock
  let r1: PgNode
  let r2: PgNode

  beforeAll(async () => {
    f = await startFlock()
    await q(f, f.primary, 'create table w(seq int primary key, at timestamptz default clock_timestamp())')
    r1 = await f.newNode('r1')
    r2 = await f.newNode('r2')
  })
  afterAll(async () => {
    await f?.cleanup()
  })

  it('adds two streaming replicas with slots, and they serve what the primary wrote', async () => {
    await createReplica(f.env, f.primary, r1, { noSync: true })
    await createReplica(f.env, f.primary, r2, { noSync: true })
    const st = await primaryStatus(clientConfig(f.env, f.primary))
    expect(st.senders.map((s) => [s.name, s.state])).toEqual([['r1', 'streaming'], ['r2', 'streaming']])
    expect(st.slots.map((s) => [s.name, s.active])).toEqual([['r1', true], ['r2', true]])
    await q(f, f.primary, 'insert into w(seq) values (-1)')
    for (const r of [r1, r2]) {
      const rows = await waitFor('replay', async () => (await q<{ n: number }>(f, r, 'select count(*)::int as n from w where seq = -1'))[0]?.n === 1)
      expect(rows).toBe(true)
      const s = await standbyStatus(clientConfig(f.env, r))
      expect(s.inRecovery).toBe(true)
      expect(s.replayLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    }
    // The password stays out of the standby's config (passfile instead).
    const auto = await import('node:fs').then((fs) => fs.readFileSync(path.join(r1.dataDir, 'postgresql.auto.conf'), 'utf8'))
    expect(auto).not.toContain(f.env.password)
    expect(auto).toContain("synchronous_standby_names = ''")
  })

  it('manages synchronous_standby_names and clears it when no sync standby is left', async () => {
    expect(syncStandbyNamesValue(['r1', 'r2'])).toBe('FIRST 1 ("r1", "r2")')
    await setSyncStandbys(f.env, f.primary, ['r1'])
    await waitFor('r1 sync', async () => (await primaryStatus(clientConfig(f.env, f.primary))).senders.find((s) => s.name === 'r1')?.syncState === 'sync')
    await q(f, f.primary, 'insert into w(seq) values (-2)')
    // Committed in sync mode means r1 has it flushed.
    const s = await primaryStatus(clientConfig(f.env, f.primary))
    expect(s.syncStandbyNames).toBe('FIRST 1 ("r1")')
    await setSyncStandbys(f.env, f.primary, [])
    expect((await primaryStatus(clientConfig(f.env, f.primary))).syncStandbyNames).toBe('')
  })

  it('switches over there and back under a running writer without losing an acknowledged write', async () => {
    const w = new Writer(f, 'w', 20)
    w.start()
    await waitFor('writes', async () => w.acked.length > 20)
    const a = await switchover(f.env, f.primary, r1, [r2], { noSync: true })
    expect(a.to).toBe('r1')
    expect(a.timeline).toBe(2)
    expect(a.repointed).toEqual(['r2'])
    expect(a.rejoin).toBe('none')
    // Every phase is measured and the outage is exactly stop + catch-up + promote.
    expect(Object.keys(a.phases).sort()).toEqual(['catchupMs', 'checkpointMs', 'fenceMs', 'promoteMs', 'rejoinMs', 'repointMs', 'stopMs', 'syncMs'])
    expect(a.writeOutageMs).toBe(a.phases.stopMs + a.phases.catchupMs + a.phases.fenceMs + a.phases.promoteMs)
    expect(await readFence(f.primary.instanceDir)).toBeUndefined()
    await waitFor('writes on r1', async () => w.acked.length > 60)
    const b = await switchover(f.env, r1, f.primary, [r2], { noSync: true })
    expect(b.to).toBe('p0')
    expect(b.timeline).toBe(3)
    const before = w.acked.length
    await waitFor('writes on p0', async () => w.acked.length > before + 20)
    await w.stop()
    const present = new Set((await q<{ seq: number }>(f, f.primary, 'select seq from w')).map((r) => r.seq))
    const missing = w.acked.filter((s) => !present.has(s))
    expect(missing).toEqual([])
    expect(w.acked.length).toBeGreaterThan(80)
    // Everyone follows p0 again, on the new timeline.
    await waitFor('r1 and r2 stream from p0', async () => {
      const st = await primaryStatus(clientConfig(f.env, f.primary))
      return st.senders.filter((s) => s.state === 'streaming').map((s) => s.name).sort().join(',') === 'r1,r2'
    })
    console.log(`switchover write outage: ${a.writeOutageMs} ms ${JSON.stringify(a.phases)} and ${b.writeOutageMs} ms ${JSON.stringify(b.phases)}; writer max gap ${w.maxGapMs()} ms`)
  })

  it('creates the replication role once, leaves it alone when it is in place, and repairs its password', async () => {
    const cfg = clientConfig(f.env, f.primary)
    expect(await ensureReplicator(cfg, 'first-password-123456')).toEqual({ changed: true })
    expect(await ensureReplicator(cfg, 'first-password-123456')).toEqual({ changed: false })
    expect(await ensureReplicator(cfg, 'second-password-123456')).toEqual({ changed: true })
    const [role] = await q<{ rolsuper: boolean; rolreplication: boolean; rolcanlogin: boolean; grants: number }>(
      f,
      f.primary,
      `select rolsuper, rolreplication, rolcanlogin,
              (select count(*)::int from pg_proc p where p.proname in ('pg_ls_dir', 'pg_stat_file', 'pg_read_binary_file')
                 and has_function_privilege('magflock_replicator', p.oid, 'execute')) as grants
         from pg_roles where rolname = 'magflock_replicator'`,
    )
    expect(role).toMatchObject({ rolsuper: false, rolreplication: true, rolcanlogin: true })
    expect(role!.grants).toBe(4)
  })

  it('starts an instance whose postmaster.pid names a live process that is not its postmaster (a zombie or recycled PID after a fence)', async () => {
    const pidFile = path.join(r2.dataDir, 'postmaster.pid')
    const text = readFileSync(pidFile, 'utf8')
    await f.env.lifecycle.stop(r2, 'immediate')
    // Postgres checks the PID in its lock file with kill(0): a zombie or any live process of
    // its own OS user passes (another user's gives EPERM, which Postgres takes for "gone").
    const squatter = spawn('sleep', ['60'], { stdio: 'ignore', ...(f.env.runAs ? { uid: f.env.runAs.uid, gid: f.env.runAs.gid } : {}) })
    try {
      writeFileSync(pidFile, text.replace(/^\d+/, String(squatter.pid)))
      await f.env.lifecycle.start(r2)
      expect((await standbyStatus(clientConfig(f.env, r2))).inRecovery).toBe(true)
      expect(readFileSync(pidFile, 'utf8').split('\n')[0]).not.toBe(String(squatter.pid))
    } finally {
      squatter.kill('SIGKILL')
    }
  })

  it('removes a replica: stopped, slot dropped, directory gone', async () => {
    const res = await removeReplica(f.env, f.primary, r2)
    expect(res.slotDropped).toBe(true)
    const st = await primaryStatus(clientConfig(f.env, f.primary))
    expect(st.slots.map((s) => s.name)).toEqual(['r1'])
    expect(existsSync(r2.instanceDir)).toBe(false)
  })
})
