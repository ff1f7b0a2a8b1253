import { promises as fsp, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { status } from '../../src/api/core.js'
import { replicaAdd, replicaList } from '../../src/api/replication.js'
import { KernelClient } from '../../src/client/index.js'
import { startKernel, type RunningKernel } from '../../src/daemon/boot.js'
import { stateLayout } from '../../src/platform/paths.js'
import { freePort } from '../../src/platform/ports.js'
import { readPostmasterPid } from '../../src/postgres/pidfile.js'
import { replicationManager } from '../../src/daemon/replication.js'
import { SUPERUSER_SECRET } from '../../src/secrets/names.js'
import { tempDir } from '../helpers/tmp.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'
import { waitFor } from '../helpers/wait.js'

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 9).toString('base64')

/**
 * The failover-monitor component inside a real kernel, with the kernel's own supervisors:
 * kill -9 of the primary's postmaster with its data dir made unable to start. The supervisor
 * tries to restart it and fails; after replication.failover.graceSeconds the monitor fences
 * it and promotes the replica; a client looping over the flock's hosts keeps writing.
 */
describe('failover-monitor component in a kernel (chaos)', () => {
  let k: RunningKernel
  let t: { dir: string; cleanup(): void }
  let client: KernelClient

  beforeAll(async () => {
    t = tempDir('mf-kfo-')
    const pgPort = await freePort()
    writeFileSync(
      path.join(t.dir, 'magflock.yaml'),
      `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\n    wal_log_hints: "on"\nmetrics:\n  port: ${await freePort()}\nreplication:\n  basePort: ${await freePort()}\n  failover:\n    graceSeconds: 1\n`,
    )
    k = await startKernel({ stateDir: path.join(t.dir, '.magflock'), projectDir: t.dir })
    client = new KernelClient(stateLayout(path.join(t.dir, '.magflock')))
  })
  afterAll(async () => {
    await k?.shutdown({ keepPostgres: false, reason: 'test' })
    t?.cleanup()
  })

  it('promotes the replica within seconds of kill -9 and the writer goes on', async () => {
    await client.call(replicaAdd, { name: 'r1', sync: true })
    const ports = (await client.call(replicaList, {})).members.map((m) => m.port)
    const password = (await k.services.secrets.get(SUPERUSER_SECRET)) ?? ''
    // The kernel runs the failover-monitor component itself (src/daemon/boot.ts).
    expect((await k.components.status()).find((c) => c.name === 'failover-monitor')).toMatchObject({ state: 'running' })
    // A client like libpq with target_session_attrs=read-write over all hosts.
    const acked: Array<{ seq: number; at: number; port: number }> = []
    let stop = false
    const writer = (async () => {
      let c: pg.Client | undefined
      let port = 0
      for (let seq = 1; !stop; seq++) {
        try {
          if (!c) {
            for (const p of ports) {
              const x = new pg.Client({ host: '127.0.0.1', port: p, user: 'postgres', password, connectionTimeoutMillis: 500 })
              x.on('error', () => undefined)
              try {
                await x.connect()
                if (!(await x.query('select pg_is_in_recovery() as r')).rows[0].r) {
                  c = x
                  port = p
                  break
                }
              } catch {
                // next host
              }
              await x.end().catch(() => undefined)
            }
            if (!c) throw new Error('no writable host')
            await c.query('create table if not exists kw(seq int primary key)')
          }
          await c.query('insert into kw values ($1)', [seq])
          acked.push({ seq, at: Date.now(), port })
        } catch {
          await c?.end().catch(() => undefined)
          c = undefined
        }
        await new Promise((r) => setTimeout(r, 20))
      }
      await c?.end().catch(() => undefined)
    })()
    await waitFor('the writer to have 20 acknowledged writes', async () => acked.length >= 20)
    const dataDir = k.services.layout.dataDir(FIRST_INSTANCE)
    const pm = await readPostmasterPid(dataDir)
    const tKill = Date.now()
    process.kill(pm!.pid, 'SIGKILL')
    await fsp.rename(path.join(dataDir, 'global', 'pg_control'), path.join(dataDir, 'global', 'pg_control.gone'))
    const r1Port = ports[1]
    const deadline = Date.now() + 30_000
    while (!acked.some((a) => a.at > tKill && a.port === r1Port) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    const first = acked.find((a) => a.at > tKill && a.port === r1Port)
    if (first) await waitFor('10 more acknowledged writes on the new primary', async () => acked.filter((a) => a.port === r1Port).length >= 10, 10_000)
    stop = true
    await writer
    expect(first).toBeDefined()
    const rto = first!.at - tKill
    const c = new pg.Client({ host: '127.0.0.1', port: r1Port, user: 'postgres', password })
    await c.connect()
    const present = new Set((await c.query<{ seq: number }>('select seq from kw')).rows.map((r) => r.seq))
    await c.end()
    const lost = acked.filter((a) => !present.has(a.seq))
    console.log(`kernel failover: RTO ${rto} ms, acked ${acked.length}, lost ${lost.length}\n${k.services.live.failoverMonitor?.history.join('\n')}`)
    expect(k.services.live.failoverMonitor?.history.some((x) => new RegExp(`^promote r1: primary ${FIRST_INSTANCE} unreachable for \\d\\.\\d s`).test(x))).toBe(true)
    expect(lost).toEqual([])
    const l = await client.call(replicaList, {})
    expect(l.members.map((m) => `${m.name}:${m.role}`)).toEqual([`${FIRST_INSTANCE}:fenced`, 'r1:primary'])
    expect(l.lastFailover).toMatchObject({ from: FIRST_INSTANCE, to: 'r1', automatic: true })
    expect(l.primaryUrl).toContain(`127.0.0.1:${r1Port}`)
    // Status after the failover (issue 10, item 21): the fenced old primary, which cannot be
    // rewound (pg_control gone), is stopped, not "restarting", and not a reachable replica.
    const waitUntil = Date.now() + 15_000
    const st = async () => client.call(status, {})
    let s = await st()
    const detailOf = (x: typeof s) => x.components.find((c) => c.name === 'failover-monitor')?.detail ?? ''
    while (Date.now() < waitUntil && !/^primary r1 is healthy/.test(detailOf(s))) {
      await new Promise((r) => setTimeout(r, 200))
      s = await st()
    }
    expect(s.instances.find((i) => i.name === FIRST_INSTANCE)).toMatchObject({ role: 'fenced' })
    expect(s.instances.find((i) => i.name === FIRST_INSTANCE)?.state).not.toMatch(/restarting|running/)
    expect(detailOf(s)).toMatch(/^primary r1 is healthy; 0 of 0 replicas reachable; 1 fenced/)
    const audit = readFileSync(k.services.layout.auditLog, 'utf8')
    expect(audit).toMatch(/"actor":"failover-monitor".*"action":"failover"|"action":"failover".*"actor":"failover-monitor"/)
    const metrics = await k.services.metrics.metrics()
    expect(metrics).toMatch(/magflock_failovers_total\{automatic="true"\} 1/)
    expect(metrics).toMatch(/magflock_timeline 2/)

    // The node comes back (pg_control restored): it rejoins with pg_rewind and streams.
    await fsp.rename(path.join(dataDir, 'global', 'pg_control.gone'), path.join(dataDir, 'global', 'pg_control'))
    const mgr = replicationManager(k.services)
    let rj: { method: string } | undefined
    for (let i = 0; i < 100 && !rj; i++) {
      rj = await mgr.rejoin(FIRST_INSTANCE, { allowReclone: false }).catch(async (err: { code?: string }) => {
        if (err.code !== 'E_BUSY') {
          console.log(readFileSync(k.services.layout.instanceLog(FIRST_INSTANCE), 'utf8').split('\n').slice(-30).join('\n'))
          throw err
        }
        await new Promise((r) => setTimeout(r, 100))
        return undefined
      })
    }
    expect(rj?.method).toBe('rewind')
    expect((await client.call(replicaList, {})).members.find((m) => m.name === FIRST_INSTANCE)).toMatchObject({ role: 'replica', state: 'streaming', fenced: false })
  }, 150_000)
})
