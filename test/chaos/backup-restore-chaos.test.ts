import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { promises as fsp } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { API_HOST } from '../../src/api/route.js'
import { waitForArchived } from '../../src/backup/archiver.js'
import { listArchive, segmentNo } from '../../src/backup/wal.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { waitFor } from '../helpers/wait.js'
import { FIRST_INSTANCE } from '../../src/daemon/instances.js'

/**
 * Faults during a restore (needs the built CLI): recovery that fails after the primary was
 * stopped, and a client that goes away mid-restore. In every case the operator ends up with
 * the database they had, and nothing the restore created stays behind.
 */

describe('chaos: restores that fail or are cancelled midway', { timeout: 300_000 }, () => {
  let f: Flock

  const sql = <T = Record<string, unknown>>(db: string, text: string) => f.sql<T>(db, text)
  async function backup(): Promise<{ id: string; stopLsn: string }> {
    const r = await f.run<{ id: string; stopLsn: string }>(['backup', 'create', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    return (r.json as { data: { id: string; stopLsn: string } }).data
  }
  async function rows(): Promise<string[]> {
    return (await sql<{ v: string }>('app', 'select v from t order by v')).map((x) => x.v)
  }
  const asides = () => readdirSync(f.layout.instanceDir(FIRST_INSTANCE)).filter((n) => n.includes('pre-restore'))

  /** Starts a restore over the raw control socket; `destroy()` is the client going away (Ctrl-C). */
  function startRestore(input: Record<string, unknown>): { destroy(): void; done: Promise<string> } {
    const body = JSON.stringify(input)
    let req: http.ClientRequest
    const done = new Promise<string>((resolve) => {
      req = http.request(
        {
          socketPath: f.layout.socket,
          method: 'POST',
          path: '/v1/backups/restore',
          headers: { host: API_HOST, authorization: `Bearer ${readFileSync(f.layout.adminToken, 'utf8').trim()}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let out = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (out += c))
          res.on('end', () => resolve(out))
          res.on('error', () => resolve(out))
        },
      )
      req.on('error', () => resolve('client gone'))
      req.end(body)
    })
    return { destroy: () => req.destroy(), done }
  }

  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    await sql('postgres', 'create database app')
    // Some bulk, so extraction takes long enough for a client to go away during it.
    await sql('app', `create table t(v text); create table bulk as select g, repeat('x', 200) as pad from generate_series(1, 200000) g`)
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('recovery fails after the primary was stopped (a corrupt archived WAL segment): the old primary is back, writable, supervised', async () => {
    const b = await backup()
    await sql('app', `insert into t values ('A')`)
    for (let i = 0; i < 3; i++) {
      await sql('app', `insert into t values ('w${i}')`)
      const l = (await sql<{ l: string }>('postgres', 'select pg_switch_wal()::text as l'))[0]!.l
      await waitForArchived(f.layout.walDir, l, 60_000)
    }
    const target = (await sql<{ t: string }>('postgres', 'select now()::text as t'))[0]!.t
    // The first segment after the backup is zeroed: present (the gap check passes), unreadable.
    const victim = (await listArchive(f.layout.walDir)).find((s) => !s.partial && s.segNo === segmentNo(b.stopLsn) + 1n)!
    expect(victim).toBeDefined()
    const fh = await fsp.open(path.join(f.layout.walDir, victim.name), 'r+')
    await fh.write(Buffer.alloc(1 << 20), 0, 1 << 20, 0)
    await fh.close()
    const before = await rows()
    const pid = await f.postmasterPid()

    const r = await f.run(['backup', 'restore', b.id, '--force', '--target-time', target, '--json'])
    expect(r.exitCode).not.toBe(0)
    expect(r.json).toMatchObject({ ok: false, error: { code: expect.stringMatching(/E_BACKUP_RECOVERY_FAILED|E_BACKUP_WAL_MISSING/) } })
    expect(await f.postmasterPid()).not.toBe(pid) // it was really stopped and started again
    expect(await rows()).toEqual(before)
    await sql('app', `insert into t values ('after-failure')`)
    expect(asides()).toEqual([])
    // Still supervised after the rollback.
    const p = (await f.postmasterPid())!
    process.kill(p, 'SIGKILL')
    await waitFor('the primary to be restarted', async () => {
      const n = await f.postmasterPid()
      return n !== undefined && n !== p && (await rows()).includes('after-failure')
    })
    await fsp.rm(path.join(f.layout.walDir, victim.name))
  })

  it('the client goes away during an in-place restore: the old data dir is put back and started', async () => {
    const b = await backup()
    await sql('app', `insert into t values ('B')`)
    const before = await rows()
    const call = startRestore({ id: b.id, force: true })
    await waitFor('the old data dir to be moved aside', async () => asides().length > 0, 120_000, 5)
    call.destroy()
    await call.done
    await waitFor('the restore to be rolled back', async () => {
      const audit = readFileSync(f.layout.auditLog, 'utf8')
      return audit.includes('E_BACKUP_CANCELLED') && asides().length === 0
    })
    expect(await rows()).toEqual(before)
    await sql('app', `insert into t values ('after-cancel')`)
  })

  it('the kernel is killed (-9) during an in-place restore: the next boot puts the old data dir back instead of an empty primary', async () => {
    const b = await backup()
    await sql('app', `insert into t values ('C')`)
    const before = await rows()
    const call = startRestore({ id: b.id, force: true })
    await waitFor('the old data dir to be moved aside', async () => asides().length > 0, 120_000, 5)
    const info = await readKernelInfo(f.layout)
    process.kill(info!.pid, 'SIGKILL')
    await call.done
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid))
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    expect(await rows()).toEqual(before)
    expect(asides()).toEqual([])
    expect(existsSync(path.join(f.layout.instanceDir(FIRST_INSTANCE), 'restore-in-progress.json'))).toBe(false)
    await sql('app', `insert into t values ('after-kill')`)
  })

  it('the client goes away while a standalone copy is restored: its instance dir is removed', async () => {
    const b = await backup()
    const call = startRestore({ id: b.id, toInstance: 'gone', force: false })
    await waitFor('the copy to be extracting', async () => existsSync(f.layout.dataDir('gone')), 120_000, 5)
    call.destroy()
    await call.done
    await waitFor('the copy to be cleaned up', async () => !existsSync(f.layout.instanceDir('gone')) && readFileSync(f.layout.auditLog, 'utf8').split('\n').some((l) => l.includes('"gone"') && l.includes('E_BACKUP_CANCELLED')))
    const st = await f.run<{ instances: Array<{ name: string }> }>(['status', '--json'])
    expect((st.json as { data: { instances: Array<{ name: string }> } }).data.instances.map((i) => i.name)).toEqual([FIRST_INSTANCE])
  })
})
