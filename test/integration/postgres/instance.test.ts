import { promises as fsp, statSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  adoptInstance,
  initInstance,
  instanceState,
  pgIsReady,
  startInstance,
  stopInstance,
  type InstanceSpec,
  type PostgresProcess,
} from '../../../src/postgres/instance.js'
import { isProcessAlive, processesInDataDir, readPostmasterPid } from '../../../src/postgres/pidfile.js'
import { until } from './events.js'
import { killLeftovers, query, testSpec } from './spec.js'

const PASSWORD = "s3cret-'quote\"-pw"

describe('postgres instance', () => {
  let spec: InstanceSpec
  let cleanup: () => void
  const handles: PostgresProcess[] = []

  beforeAll(async () => {
    const t = await testSpec()
    spec = t.spec
    cleanup = t.cleanup
    await initInstance(spec, PASSWORD)
  })

  afterAll(async () => {
    for (const h of handles) h.detach()
    await stopInstance(spec, 'immediate').catch(() => undefined)
    await killLeftovers(spec.dataDir)
    cleanup()
  })

  it('initialises a checksummed SCRAM instance owned by the postgres user, without leaving the password behind', async () => {
    expect(await instanceState(spec)).toBe('ready')
    const st = statSync(spec.dataDir)
    expect(st.mode & 0o777).toBe(0o700)
    if (spec.runAs) expect(st.uid).toBe(spec.runAs.uid)
    const meta = JSON.parse(await fsp.readFile(path.join(spec.dataDir, 'magflock.json'), 'utf8'))
    expect(meta.version).toBe(spec.bins.version)
    expect(typeof meta.initializedAt).toBe('string')
    // no pwfile and no data.initializing left next to the data dir
    expect((await fsp.readdir(spec.instanceDir)).sort()).toEqual(['data'])
    const hba = await fsp.readFile(path.join(spec.dataDir, 'pg_hba.conf'), 'utf8')
    // Replication connections only for the replication role and the superuser (backup tools).
    expect(hba).toMatch(/host\s+replication\s+magflock_replicator\s+127\.0\.0\.1\/32\s+scram-sha-256/)
    expect(hba).toMatch(new RegExp(`host\\s+replication\\s+${spec.superuser}\\s+127\\.0\\.0\\.1/32\\s+scram-sha-256`))
    expect(hba).not.toMatch(/replication\s+all/)
    expect(hba).not.toMatch(/trust/)
  })

  it('refuses a second initInstance with E_INSTANCE_ALREADY_INITIALIZED', async () => {
    await expect(initInstance(spec, PASSWORD)).rejects.toMatchObject({ code: 'E_INSTANCE_ALREADY_INITIALIZED' })
  })

  it('starts, accepts the password, rejects a wrong one, and has checksums and MagFlock settings', async () => {
    const h = await startInstance(spec)
    handles.push(h)
    expect(h.adopted).toBe(false)
    expect(await isProcessAlive(h.pid)).toBe(true)
    // Its own session and process group: a signal to the kernel's group or a dying kernel
    // does not reach it (it outlives the kernel).
    const stat = await fsp.readFile(`/proc/${h.pid}/stat`, 'utf8')
    const [pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(2, 4).map(Number)
    expect(pgrp).toBe(h.pid)
    expect(session).toBe(h.pid)
    if (spec.runAs) expect(statSync(`/proc/${h.pid}`).uid).toBe(spec.runAs.uid)
    // The postmaster and its children (checkpointer, walwriter…) are found by their data dir.
    const procs = await processesInDataDir(spec.dataDir)
    expect(procs).toContain(h.pid)
    expect(procs.length).toBeGreaterThan(2)
    expect(await pgIsReady(spec)).toBe('running')
    const r = await query<{ data_checksums: string }>(spec, PASSWORD, 'SHOW data_checksums')
    expect(r.rows[0]?.data_checksums).toBe('on')
    const s = await query<{ name: string; setting: string }>(
      spec,
      PASSWORD,
      "select name, setting from pg_settings where name in ('wal_level','password_encryption','listen_addresses','unix_socket_directories','hot_standby') order by name",
    )
    expect(Object.fromEntries(s.rows.map((x) => [x.name, x.setting]))).toEqual({
      hot_standby: 'on',
      listen_addresses: '127.0.0.1',
      password_encryption: 'scram-sha-256',
      unix_socket_directories: spec.instanceDir,
      wal_level: 'replica',
    })
    await expect(query(spec, 'wrong-password', 'select 1')).rejects.toMatchObject({ code: '28P01' })
    const log = await fsp.readFile(spec.logFile, 'utf8')
    expect(log).not.toContain(PASSWORD)
  })

  it('adopts the running postmaster instead of starting a second one', async () => {
    const running = handles[0]!
    const adopted = await adoptInstance(spec)
    expect(adopted?.pid).toBe(running.pid)
    expect(adopted?.adopted).toBe(true)
    adopted?.detach()
    const again = await startInstance(spec)
    expect(again.pid).toBe(running.pid)
    expect(again.adopted).toBe(true)
    again.detach()
  })

  it('refuses with E_PORT_IN_USE when another process holds the port, and starts nothing', async () => {
    await stopInstance(spec, 'fast')
    const srv = net.createServer()
    await new Promise<void>((r) => srv.listen({ port: spec.port, host: '127.0.0.1' }, () => r()))
    try {
      await expect(startInstance(spec)).rejects.toMatchObject({ code: 'E_PORT_IN_USE' })
      expect(await readPostmasterPid(spec.dataDir)).toBeUndefined()
      expect(await processesInDataDir(spec.dataDir)).toEqual([])
    } finally {
      await new Promise<void>((r) => srv.close(() => r()))
    }
  })

  it('stops through the handle: exited resolves and the port stops answering', async () => {
    const h = await startInstance(spec)
    await h.stop('fast')
    const exit = await h.exited
    expect(exit.code).toBe(0)
    expect(await isProcessAlive(h.pid)).toBe(false)
    expect(await pgIsReady(spec)).toBe('no_response')
    expect(await readPostmasterPid(spec.dataDir)).toBeUndefined()
    expect(await stopInstance(spec, 'fast')).toEqual({ wasRunning: false, pid: null })
  })

  it('stops without a handle through postmaster.pid (stopInstance)', async () => {
    const h = await startInstance(spec)
    h.detach()
    const res = await stopInstance(spec, 'immediate')
    expect(res).toEqual({ wasRunning: true, pid: h.pid })
    expect(await isProcessAlive(h.pid)).toBe(false)
  })

  it('replaces a stale postmaster.pid whose PID is dead', async () => {
    const h = await startInstance(spec)
    const text = await fsp.readFile(path.join(spec.dataDir, 'postmaster.pid'), 'utf8')
    await h.stop('fast')
    // A PID above pid_max cannot be alive.
    await fsp.writeFile(path.join(spec.dataDir, 'postmaster.pid'), text.replace(/^\d+/, '4194399'))
    expect(await adoptInstance(spec)).toBeUndefined()
    const h2 = await startInstance(spec)
    expect(h2.adopted).toBe(false)
    expect((await readPostmasterPid(spec.dataDir))?.pid).toBe(h2.pid)
    await h2.stop('fast')
  })

  it('never trusts a postmaster.pid that names a live process that is not our postmaster', async () => {
    const h = await startInstance(spec)
    const text = await fsp.readFile(path.join(spec.dataDir, 'postmaster.pid'), 'utf8')
    await h.stop('immediate')
    await fsp.writeFile(path.join(spec.dataDir, 'postmaster.pid'), text.replace(/^\d+/, String(process.pid)))
    expect(await adoptInstance(spec)).toBeUndefined()
    expect(await stopInstance(spec, 'fast')).toEqual({ wasRunning: false, pid: null })
    const h2 = await startInstance(spec)
    expect(h2.pid).not.toBe(process.pid)
    expect(h2.adopted).toBe(false)
    expect(await pgIsReady(spec)).toBe('running')
    await h2.stop('fast')
  })

  it('times out with E_INSTANCE_START_TIMEOUT but leaves Postgres starting, and the next start adopts it', async () => {
    const hurried: InstanceSpec = { ...spec, startTimeoutMs: 0 } // the deadline has passed at the first look: Postgres is never ready that soon
    await expect(startInstance(hurried)).rejects.toMatchObject({ code: 'E_INSTANCE_START_TIMEOUT' })
    await until(async () => (await readPostmasterPid(spec.dataDir)) !== undefined, 'postmaster.pid')
    const pf = await readPostmasterPid(spec.dataDir)
    expect(await isProcessAlive(pf!.pid)).toBe(true)
    const h = await startInstance(spec)
    expect(h).toMatchObject({ pid: pf?.pid, adopted: true })
    await h.stop('fast')
  })

  it('fails with E_INSTANCE_START_FAILED and the log tail when Postgres rejects its settings', async () => {
    const bad: InstanceSpec = { ...spec, settings: { ...spec.settings, shared_buffers: 'lots' } }
    const err = await startInstance(bad).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'E_INSTANCE_START_FAILED' })
    expect((err as Error).message).toMatch(/shared_buffers/)
    expect(await processesInDataDir(spec.dataDir)).toEqual([])
  })

  it('refuses to start an instance that was never initialised, and to initialise one with a bad setting name', async () => {
    const t = await testSpec({ name: 'never', settings: { 'bad name': 1 } })
    try {
      expect(await instanceState(t.spec)).toBe('absent')
      await expect(startInstance(t.spec)).rejects.toMatchObject({ code: 'E_INSTANCE_NOT_INITIALIZED' })
      await expect(initInstance(t.spec, PASSWORD)).rejects.toMatchObject({ code: 'E_POSTGRES_INVALID_SETTING' })
      expect(await instanceState(t.spec)).toBe('absent')
    } finally {
      t.cleanup()
    }
  })
})
