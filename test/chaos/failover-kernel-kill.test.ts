import { existsSync, promises as fsp, readFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { readPostmasterPid } from '../../src/postgres/pidfile.js'
import { readFence } from '../../src/replication/fence.js'
import { createReplicatedFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'
import { query, inRecovery } from '../helpers/sql.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'

/**
 * A real kernel (the built CLI's detached `kernel start`) killed with SIGKILL in the middle of
 * an automatic failover, through the test-only fault hook MAGFLOCK_FAULT=failover:<phase>
 * (src/replication/fault.ts), at two phases: after the old primary is fenced but before the
 * replica is promoted, and after the promotion but before the new topology is saved. The next
 * `kernel start` must finish the failover: exactly one writable instance, the topology says
 * what Postgres says, the old primary rejoins as a streaming replica (pg_rewind), writes work.
 */

describe('chaos: kill -9 of the kernel in the middle of a failover (real kernel, fault hook)', () => {
  let f: Flock | undefined
  afterEach(async () => {
    await f?.destroy()
    f = undefined
  })

  for (const phase of ['after-fence', 'after-promote'] as const) {
    it(`the next kernel finishes a failover interrupted ${phase.replace('-', ' ')}`, async () => {
      const fault = { MAGFLOCK_FAULT: `failover:${phase}` }
      const rf = await createReplicatedFlock(fault)
      f = rf.f
      const fl = f
      const { pgPort, password, r1Port, list } = rf

      // Rows the replica has replayed before the crash: none of them may be lost.
      await query(pgPort, password, 'create table kk(seq int primary key); insert into kk select generate_series(1, 100)')
      await waitFor('r1 to replay the rows', async () => (await query<{ n: number }>(r1Port, password, 'select count(*)::int as n from kk'))[0]?.n === 100)

      // The node dies: kill -9 of the postmaster, data dir unable to start. The supervisor's
      // restart attempt fails, the monitor fails over, and the kernel dies at `phase`.
      const kernel = await readKernelInfo(fl.layout)
      const dataDir = fl.layout.dataDir(FIRST_INSTANCE)
      const pm = await readPostmasterPid(dataDir)
      process.kill(pm!.pid, 'SIGKILL')
      await fsp.rename(path.join(dataDir, 'global', 'pg_control'), path.join(dataDir, 'global', 'pg_control.gone'))
      await waitFor('the kernel to kill itself at the fault point', async () => !isProcessAliveSync(kernel!.pid), 60_000)

      // What the dead kernel left: the old primary fenced, the failover recorded as in progress,
      // the topology file still naming the old primary; r1 promoted only after the fence.
      expect((await readFence(fl.layout.instanceDir(FIRST_INSTANCE)))?.newPrimary).toBe('r1')
      const repl = JSON.parse(readFileSync(path.join(fl.stateDir, 'replication.json'), 'utf8')) as { inProgress?: { op: string; to: string } }
      expect(repl.inProgress).toMatchObject({ op: 'failover', to: 'r1' })
      const topo = JSON.parse(readFileSync(path.join(fl.stateDir, 'topology.json'), 'utf8')) as { instances: Array<{ name: string; role: string }> }
      expect(topo.instances.map((i) => `${i.name}:${i.role}`)).toEqual([`${FIRST_INSTANCE}:primary`, 'r1:replica'])
      expect(await inRecovery(r1Port, password)).toBe(phase === 'after-fence')
      expect(existsSync(path.join(dataDir, 'standby.signal'))).toBe(true)

      // The node comes back (pg_control restored) while no kernel runs; then the next kernel.
      await fsp.rename(path.join(dataDir, 'global', 'pg_control.gone'), path.join(dataDir, 'global', 'pg_control'))
      const again = await fl.run(['kernel', 'start', '--json'])
      expect(again.exitCode, again.stdout + again.stderr).toBe(0)

      // It finishes the failover, and the old primary rejoins as a streaming replica.
      const done = await waitFor('the failover to finish and the old primary to rejoin', async () => {
        const l = await list()
        const roles = l.members.map((m) => `${m.name}:${m.role}:${m.state}`)
        return roles.join(',') === `${FIRST_INSTANCE}:replica:streaming,r1:primary:running` ? l : undefined
      })
      expect(done.lastFailover).toMatchObject({ from: FIRST_INSTANCE, to: 'r1', automatic: true })
      expect(done.primaryUrl).toContain(`127.0.0.1:${r1Port}`)
      expect(await readFence(fl.layout.instanceDir(FIRST_INSTANCE))).toBeUndefined()
      const repl2 = JSON.parse(readFileSync(path.join(fl.stateDir, 'replication.json'), 'utf8')) as { inProgress?: unknown }
      expect(repl2.inProgress).toBeUndefined()
      const topo2 = JSON.parse(readFileSync(path.join(fl.stateDir, 'topology.json'), 'utf8')) as { instances: Array<{ name: string; role: string }> }
      expect(topo2.instances.map((i) => `${i.name}:${i.role}`)).toEqual([`${FIRST_INSTANCE}:replica`, 'r1:primary'])

      // The kernel supervises the rejoined old primary (it booted it unsupervised, fenced).
      const st = await fl.run<{ instances: Array<{ name: string; role: string; state: string }> }>(['status', '--json'])
      expect(st.json?.ok && st.json.data.instances.map((i) => `${i.name}:${i.role}:${i.state}`)).toEqual([`${FIRST_INSTANCE}:replica:running`, 'r1:primary:running'])

      // Exactly one writable instance, and it is the one the topology names.
      expect(await inRecovery(pgPort, password)).toBe(true)
      expect(await inRecovery(r1Port, password)).toBe(false)

      // Writes work on the new primary, nothing replicated before the crash is lost, and the
      // rejoined old primary receives the new writes.
      await query(r1Port, password, 'insert into kk values (101)')
      expect((await query<{ n: number }>(r1Port, password, 'select count(*)::int as n from kk'))[0]?.n).toBe(101)
      await waitFor('the old primary to replay the new write', async () => (await query<{ n: number }>(pgPort, password, 'select count(*)::int as n from kk'))[0]?.n === 101)

      // The audit log has the automatic failover with its reason.
      const audit = readFileSync(fl.layout.auditLog, 'utf8')
      expect(audit).toMatch(/"action":"failover"/)
      expect(audit).toContain(`primary ${FIRST_INSTANCE} is fenced`)
    }, 240_000)
  }
})
