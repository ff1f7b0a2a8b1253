import { writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { replicaAdd, replicaList } from '../../src/api/replication.js'
import { KernelClient } from '../../src/client/index.js'
import { startKernel, type RunningKernel } from '../../src/daemon/boot.js'
import { stateLayout } from '../../src/platform/paths.js'
import { freePort } from '../../src/platform/ports.js'
import { processesInDataDir, readPostmasterPid } from '../../src/postgres/pidfile.js'
import { SUPERUSER_SECRET } from '../../src/secrets/names.js'
import { tempDir } from '../helpers/tmp.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 9).toString('base64')

/**
 * Postgres crashes while the kernel lives (kill -9 of the postmaster only, data dir intact).
 * Its backends are orphaned and keep serving their clients: one of them could acknowledge a
 * commit that no replica will ever receive. The supervisor must SIGKILL them the moment it
 * sees the postmaster dead (before its restart backoff, made long here so the window is
 * observable without any timing assertion), then restart Postgres in place: no failover, no
 * acknowledged write lost, and a transaction open on an orphan can never commit.
 */
describe('chaos: postmaster killed, kernel alive (restart in place)', () => {
  let k: RunningKernel
  let t: { dir: string; cleanup(): void }
  let client: KernelClient

  beforeAll(async () => {
    t = tempDir('mf-pgcrash-')
    // A generous grace period: whether a loaded host restarts within 1 s is the benchmark's
    // question (bench/failover-magflock.mjs pgcrash), not this test's.
    writeFileSync(
      path.join(t.dir, 'magflock.yaml'),
      `postgres:\n  port: ${await freePort()}\n  settings:\n    fsync: "off"\nkernel:\n  restart:\n    initialBackoffMs: 3000\nmetrics:\n  port: ${await freePort()}\nreplication:\n  basePort: ${await freePort()}\n  failover:\n    graceSeconds: 60\n`,
    )
    k = await startKernel({ stateDir: path.join(t.dir, '.magflock'), projectDir: t.dir })
    client = new KernelClient(stateLayout(path.join(t.dir, '.magflock')))
  })
  afterAll(async () => {
    await k?.shutdown({ keepPostgres: false, reason: 'test' })
    t?.cleanup()
  })

  it('kills the orphaned backends at once, restarts in place, and no acknowledged write is lost', async () => {
    await client.call(replicaAdd, { name: 'r1', sync: false })
    const port = (await client.call(replicaList, {})).members.find((m) => m.name === FIRST_INSTANCE)!.port
    const password = (await k.services.secrets.get(SUPERUSER_SECRET)) ?? ''
    const events: string[] = []
    const unsubscribe = k.services.events.subscribe((ev) => {
      if (ev.type.startsWith('instance.') || ev.type.startsWith('failover.')) events.push(ev.type)
    })
    const connect = async () => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, connectionTimeoutMillis: 1000 })
      c.on('error', () => undefined)
      await c.connect()
      return c
    }
    const setup = await connect()
    await setup.query('create table pc(seq int primary key)')
    await setup.end()

    // A writer that reconnects on error, counting every acknowledged INSERT.
    const acked: number[] = []
    let stop = false
    const writer = (async () => {
      let c: pg.Client | undefined
      for (let seq = 1; !stop; seq++) {
        try {
          c ??= await connect()
          await c.query('insert into pc values ($1)', [seq])
          acked.push(seq)
        } catch {
          await c?.end().catch(() => undefined)
          c = undefined
        }
        await new Promise((r) => setTimeout(r, 20))
      }
      await c?.end().catch(() => undefined)
    })()
    // A transaction in flight on a backend that the crash will orphan.
    const inflight = await connect()
    await inflight.query('begin')
    await inflight.query('insert into pc values (-1)')
    while (acked.length < 20) await new Promise((r) => setTimeout(r, 20))

    const dataDir = k.services.layout.dataDir(FIRST_INSTANCE)
    const pm = await readPostmasterPid(dataDir)
    const sup = k.instances.supervisor(FIRST_INSTANCE)!
    process.kill(pm!.pid, 'SIGKILL')
    // During the restart backoff (3 s here) not one process of the dead instance is left...
    while (sup.status().state !== 'restarting') await new Promise((r) => setTimeout(r, 10))
    expect(await processesInDataDir(dataDir)).toEqual([])
    expect(sup.lastDecision()).toMatch(/^restarting in/)
    // ...so the transaction open on an orphaned backend can never be acknowledged.
    await expect(inflight.query('commit')).rejects.toThrow()
    await inflight.end().catch(() => undefined)

    // Restarted in place, writes go on, and the primary never changed.
    while (sup.status().state !== 'running') await new Promise((r) => setTimeout(r, 50))
    const before = acked.length
    while (acked.length < before + 20) await new Promise((r) => setTimeout(r, 20))
    stop = true
    await writer
    unsubscribe()

    const c = await connect()
    const present = new Set((await c.query<{ seq: number }>('select seq from pc')).rows.map((r) => r.seq))
    await c.end()
    expect(acked.filter((s) => !present.has(s))).toEqual([])
    expect(present.has(-1)).toBe(false)
    expect(sup.status()).toMatchObject({ state: 'running', restarts: 1 })
    expect(events).toContain('instance.crashed')
    expect(events).toContain('instance.restarted')
    expect(events.filter((e) => ['failover.started', 'failover.completed', 'failover.failed', 'instance.restart-failed', 'instance.fenced'].includes(e))).toEqual([])
    const l = await client.call(replicaList, {})
    expect(l.members.map((m) => `${m.name}:${m.role}`)).toEqual([`${FIRST_INSTANCE}:primary`, 'r1:replica'])
    expect(l.failoversTotal).toBe(0)
    expect(k.services.live.failoverMonitor?.history.some((s) => s.startsWith('promote'))).toBe(false)
  }, 120_000)
})
