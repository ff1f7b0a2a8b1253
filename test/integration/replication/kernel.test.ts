import path from 'node:path'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { status } from '../../../src/api/core.js'
import { failover, replicaAdd, replicaList, replicaRejoin, replicaRemove, switchover } from '../../../src/api/replication.js'
import type { KernelClient } from '../../../src/client/index.js'
import type { RunningKernel } from '../../../src/daemon/boot.js'
import { isMagflockError } from '../../../src/errors/index.js'
import { startKernelFlock, type KernelFlock } from './harness.js'
import { FIRST_INSTANCE } from '../../../src/daemon/instances.js'

/**
 * The replication routes through a real in-process kernel: its supervisors, registry,
 * topology lock and audit log; commands' typed client calls exactly these routes.
 */
describe('replication through the kernel control API', () => {
  let f: KernelFlock
  let k: RunningKernel
  let client: KernelClient
  let password: string
  const roles = async () => Object.fromEntries((await client.call(status, {})).instances.map((i) => [i.name, i.role]))
  const query = <R extends pg.QueryResultRow>(port: number, text: string) => f.query<R>(port, text)
  const write = async (port: number, v: number) => {
    await query(port, 'create table if not exists kt(v int)')
    await f.query(port, 'insert into kt values ($1)', [v])
  }

  beforeAll(async () => {
    f = await startKernelFlock('mf-krepl-')
    ;({ k, client, password } = f)
  })
  afterAll(async () => {
    await f?.stop()
  })

  it('adds a replica (streamed progress) and a synchronous one, and lists them with lag and a routing URL', async () => {
    const phases: string[] = []
    const r1 = await client.call(replicaAdd, { name: 'r1' }, { onProgress: (e) => phases.push(e.phase) })
    expect(r1).toMatchObject({ name: 'r1', role: 'replica', state: 'streaming', sync: false })
    expect(phases).toEqual(expect.arrayContaining(['clone', 'start', 'done']))
    const r2 = await client.call(replicaAdd, { sync: true })
    expect(r2).toMatchObject({ name: 'pg2', sync: true, syncState: 'sync' })
    const l = await client.call(replicaList, {})
    expect(l.members.map((m) => `${m.name}:${m.role}`)).toEqual([`${FIRST_INSTANCE}:primary`, 'r1:replica', 'pg2:replica'])
    expect(l.members.find((m) => m.name === 'r1')?.lagBytes).toBeTypeOf('number')
    expect(l.primaryUrl).toMatch(/^postgresql:\/\/postgres@127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/postgres\?target_session_attrs=read-write/)
    expect(l.primaryUrl).not.toContain(password)
    expect(await roles()).toEqual({ [FIRST_INSTANCE]: 'primary', r1: 'replica', pg2: 'replica' })
    // Replicas log in as the dedicated replication role, never as the superuser.
    const primaryPort = l.members.find((m) => m.name === FIRST_INSTANCE)!.port
    const senders = await query<{ application_name: string; usename: string }>(primaryPort, 'select application_name, usename from pg_stat_replication order by 1')
    expect(senders.filter((x) => ['r1', 'pg2'].includes(x.application_name)).map((x) => x.usename)).toEqual(['magflock_replicator', 'magflock_replicator'])
    const role = await query<{ rolsuper: boolean; rolreplication: boolean }>(primaryPort, `select rolsuper, rolreplication from pg_roles where rolname = 'magflock_replicator'`)
    expect(role).toEqual([{ rolsuper: false, rolreplication: true }])
    const conninfo = await query<{ v: string }>(r1.port, `select current_setting('primary_conninfo') as v`)
    expect(conninfo[0]!.v).toContain('user=magflock_replicator ')
    const replPassword = (await k.services.secrets.get('replication.replicator.password')) ?? ''
    expect(replPassword.length).toBeGreaterThan(16)
    const fs = await import('node:fs')
    const instanceDir = k.services.layout.instanceDir('r1')
    for (const text of [conninfo[0]!.v, fs.readFileSync(path.join(instanceDir, 'data', 'postgresql.auto.conf'), 'utf8'), fs.readFileSync(path.join(instanceDir, 'replication.pgpass'), 'utf8')]) {
      expect(text).not.toContain(password)
    }
    // The leak check must have something to look at: the log exists and tells of the new replica.
    const kernelLog = fs.readFileSync(k.services.layout.kernelLog, 'utf8')
    expect(kernelLog).toMatch(/"instance":"r1"/)
    // Every line names each top-level key once (children bound to an instance log it again).
    const repeated = kernelLog
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => {
        const keys = Object.keys(JSON.parse(line) as object)
        const written = [...line.matchAll(/[{,]"([A-Za-z_]+)":/g)].map((m) => m[1]!).filter((k) => keys.includes(k))
        return written.length > new Set(written).size ? [line.slice(0, 160)] : []
      })
    expect(repeated).toEqual([])
    expect(password.length).toBeGreaterThan(16)
    for (const text of [JSON.stringify(l), kernelLog, fs.readFileSync(k.services.layout.auditLog, 'utf8'), fs.readFileSync(path.join(instanceDir, 'data', 'postgresql.auto.conf'), 'utf8')]) {
      expect(text).not.toContain(replPassword)
    }
    const dup = await client.call(replicaAdd, { name: 'r1' }).catch((e: unknown) => e)
    expect(isMagflockError(dup) && dup.code).toBe('E_REPLICA_EXISTS')
    // Names never repeat a role word: roles move, names stay.
    for (const name of ['primary', 'replica']) {
      const bad = await client.call(replicaAdd, { name }).catch((e: unknown) => e)
      expect(isMagflockError(bad) && bad.code).toBe('E_REPLICA_NAME_INVALID')
    }
    // `magflock status` shows each replica's streaming state and lag from the monitor's last
    // look at pg_stat_replication (refreshed about every 200 ms).
    const deadline = Date.now() + 10_000
    let s = await client.call(status, {})
    // The monitor's cached look may predate pg2 turning synchronous: wait for both facts.
    const settled = () => s.instances.filter((i) => i.replication).length >= 2 && s.instances.find((i) => i.name === 'pg2')?.replication?.syncState === 'sync'
    while (Date.now() < deadline && !settled()) {
      await new Promise((r) => setTimeout(r, 100))
      s = await client.call(status, {})
    }
    expect(s.instances.find((i) => i.name === 'r1')?.replication).toMatchObject({ state: 'streaming', syncState: 'async', lagBytes: expect.any(Number) })
    expect(s.instances.find((i) => i.name === 'pg2')?.replication).toMatchObject({ state: 'streaming', syncState: 'sync' })
    expect(s.instances.find((i) => i.name === FIRST_INSTANCE)?.replication).toBeUndefined()
  })

  it('switches over to r1 and back; the registry, topology file and audit log follow', async () => {
    const a = await client.call(switchover, { to: 'r1' })
    expect(a).toMatchObject({ from: FIRST_INSTANCE, to: 'r1', rejoin: 'none' })
    const p = a.phases
    expect(a.writeOutageMs).toBe(p.stopMs + p.catchupMs + p.fenceMs + p.promoteMs)
    expect(await roles()).toEqual({ [FIRST_INSTANCE]: 'replica', r1: 'primary', pg2: 'replica' })
    const l = await client.call(replicaList, {})
    await write(l.members.find((m) => m.name === 'r1')!.port, 1)
    // The synchronous flag stays with pg2, which now follows r1 as its synchronous standby.
    expect(l.members.find((m) => m.name === 'pg2')).toMatchObject({ sync: true, syncState: 'sync' })
    const b = await client.call(switchover, { to: FIRST_INSTANCE })
    expect(b.to).toBe(FIRST_INSTANCE)
    expect(await roles()).toEqual({ [FIRST_INSTANCE]: 'primary', r1: 'replica', pg2: 'replica' })
    const audit = await import('node:fs').then((fs) => fs.readFileSync(k.services.layout.auditLog, 'utf8'))
    expect(audit).toContain('"action":"switchover"')
  })

  it('fails over on request, fences the old primary, and rejoins it', async () => {
    const refused = await client.call(failover, { to: 'nope' }).catch((e: unknown) => e)
    expect(isMagflockError(refused) && refused.code).toBe('E_FAILOVER_REFUSED')
    const f = await client.call(failover, { to: 'pg2' })
    expect(f).toMatchObject({ from: FIRST_INSTANCE, to: 'pg2' })
    // The loop carried out the request and says what it saw: a healthy primary, no invented outage.
    expect(f.reason).toBe(`operator requested a failover from ${FIRST_INSTANCE}`)
    expect(await roles()).toEqual({ [FIRST_INSTANCE]: 'fenced', r1: 'replica', pg2: 'primary' })
    const l = await client.call(replicaList, {})
    expect(l.members.find((m) => m.name === FIRST_INSTANCE)).toMatchObject({ fenced: true, state: 'fenced' })
    expect(l.lastFailover).toMatchObject({ from: FIRST_INSTANCE, to: 'pg2', automatic: false, reason: f.reason })
    const fs = await import('node:fs')
    const repl = JSON.parse(fs.readFileSync(path.join(k.services.layout.root, 'replication.json'), 'utf8')) as { lastFailover?: { reason: string } }
    expect(repl.lastFailover?.reason).toBe(f.reason)
    const audited = fs.readFileSync(k.services.layout.auditLog, 'utf8').split('\n').filter((x) => x.includes('"action":"failover"'))
    expect(audited.at(-1)).toContain(JSON.stringify(f.reason))
    expect(audited.join('\n')).not.toMatch(/unreachable for/)
    expect(k.services.live.failoverMonitor?.history.some((x) => x.startsWith(`promote pg2: operator requested a failover from ${FIRST_INSTANCE}`))).toBe(true)
    // Status after the failover: the fenced old primary is stopped, not "restarting", and the
    // monitor does not count it as a reachable replica.
    const st = await client.call(status, {})
    expect(st.instances.find((i) => i.name === FIRST_INSTANCE)).toMatchObject({ role: 'fenced', state: 'stopped' })
    const detail = async () => (await client.call(status, {})).components.find((c) => c.name === 'failover-monitor')?.detail ?? ''
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline && !/^primary pg2 is healthy/.test(await detail())) await new Promise((r) => setTimeout(r, 100))
    expect(await detail()).toMatch(/^primary pg2 is healthy; 1 of 1 replicas reachable; 1 fenced/)
    const rj = await client.call(replicaRejoin, { name: FIRST_INSTANCE })
    expect(['rewind', 'none']).toContain(rj.method)
    expect(await roles()).toEqual({ [FIRST_INSTANCE]: 'replica', r1: 'replica', pg2: 'primary' })
  })

  it('removes a replica and refuses to remove the primary', async () => {
    const bad = await client.call(replicaRemove, { name: 'pg2' }).catch((e: unknown) => e)
    expect(isMagflockError(bad) && bad.code).toBe('E_SWITCHOVER_TARGET')
    const r = await client.call(replicaRemove, { name: 'r1' })
    expect(r.slotDropped).toBe(true)
    expect(Object.keys(await roles()).sort()).toEqual([FIRST_INSTANCE, 'pg2'].sort())
  })
})
