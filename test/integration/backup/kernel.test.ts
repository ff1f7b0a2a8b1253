import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backupCreate, backupList, backupPrune, backupRekey, backupRestore, backupVerify } from '../../../src/api/backup.js'
import { KernelClient } from '../../../src/client/index.js'
import { startKernel, type RunningKernel } from '../../../src/daemon/boot.js'
import { stateLayout } from '../../../src/platform/paths.js'
import { freePort } from '../../../src/platform/ports.js'
import { run } from '../../../src/platform/process.js'
import { SUPERUSER_SECRET } from '../../../src/secrets/names.js'
import { tempDir } from '../../helpers/tmp.js'

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 9).toString('base64')

/** The backup routes through a real in-process kernel, called with the typed client. */
describe('backup through the kernel control API', () => {
  let k: RunningKernel
  let client: KernelClient
  let t: { dir: string; cleanup(): void }
  let password: string
  const KEK = 'kek-value-that-must-never-leak-1'
  let restoredDataDir: string | undefined

  beforeAll(async () => {
    t = tempDir('mf-kbk-')
    const pgPort = await freePort()
    const metricsPort = await freePort()
    writeFileSync(path.join(t.dir, 'magflock.yaml'), `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${metricsPort}\n`)
    k = await startKernel({ stateDir: path.join(t.dir, '.magflock'), projectDir: t.dir })
    client = new KernelClient(stateLayout(path.join(t.dir, '.magflock')))
    password = (await k.services.secrets.get(SUPERUSER_SECRET)) ?? ''
    await k.services.secrets.set('backup.kek', KEK)
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: 'postgres' })
    await c.connect()
    await c.query('create database app')
    await c.end()
    const a = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: 'app' })
    await a.connect()
    await a.query('create table t(id int); insert into t select generate_series(1, 1000)')
    await a.end()
  })
  afterAll(async () => {
    if (restoredDataDir) await run(k.services.bins.tool('pg_ctl'), ['-D', restoredDataDir, '-m', 'immediate', '-w', 'stop'], { runAs: k.services.runAs, reject: false })
    await k?.shutdown({ keepPostgres: false, reason: 'test' })
    t?.cleanup()
  })

  it('creates an encrypted physical backup with byte progress, lists, verifies and restores it as a new instance', async () => {
    const events: Array<{ phase: string; bytesDone?: number | undefined }> = []
    const b = await client.call(backupCreate, { type: 'physical', encrypt: true }, { onProgress: (e) => events.push(e) })
    expect(b).toMatchObject({ type: 'physical', encrypted: true, compression: 'lz4' })
    expect(events.some((e) => e.phase === 'backup' && typeof e.bytesDone === 'number')).toBe(true)
    expect(events.at(-1)?.phase).toBe('done')
    const l = await client.call(backupList, {})
    expect(l.backups.map((x) => x.id)).toEqual([b.id])
    const v = await client.call(backupVerify, { id: b.id, deep: true })
    expect(v).toMatchObject({ ok: true, deep: true })
    const r = await client.call(backupRestore, { id: b.id, toInstance: 'restored', force: false })
    restoredDataDir = r.dataDir ?? undefined
    expect(r).toMatchObject({ kind: 'instance', target: 'restored', pitr: false })
    const c = new pg.Client({ host: '127.0.0.1', port: r.port!, user: 'postgres', password, database: 'app' })
    await c.connect()
    expect((await c.query('select count(*)::int as n from t')).rows[0].n).toBe(1000)
    await c.end()
    const audit = readFileSync(k.services.layout.auditLog, 'utf8')
    expect(audit).toContain('backup.create')
    expect(audit).toContain(b.id)
    expect(audit).not.toContain(KEK)
  })

  it('logical backup of one database and restore into a new one; refuses the existing name', async () => {
    const b = await client.call(backupCreate, { type: 'logical', db: 'app', encrypt: false })
    expect(b.databases).toEqual(['app'])
    const r = await client.call(backupRestore, { id: b.id, toDb: 'app_copy', force: false })
    expect(r).toMatchObject({ kind: 'database', target: 'app_copy' })
    await expect(client.call(backupRestore, { id: b.id, toDb: 'app', force: false })).rejects.toMatchObject({ code: 'E_BACKUP_TARGET_EXISTS' })
  })

  it('rekeys without rewriting data, then a restore needs the new key; prune dry-run lists by LSN', async () => {
    const before = (await client.call(backupList, {})).backups.find((x) => x.encrypted)!
    await k.services.secrets.set('backup.kek.new', 'the-new-kek-value-2')
    const rk = await client.call(backupRekey, { fromSecret: 'backup.kek', toSecret: 'backup.kek.new' })
    expect(rk.rewrapped).toEqual([before.id])
    const after = (await client.call(backupList, {})).backups.find((x) => x.id === before.id)!
    expect(after.keyId).toBe(rk.newKeyId)
    expect(after.keyId).not.toBe(before.keyId)
    const v = await client.call(backupVerify, { id: before.id, deep: true })
    expect(v.ok).toBe(true)
    await k.services.secrets.delete('backup.kek.new')
    await expect(client.call(backupRestore, { id: before.id, toInstance: 'nokey', force: false })).rejects.toMatchObject({ code: 'E_BACKUP_KEY_MISSING' })
    const p = await client.call(backupPrune, { keepLast: 0, dryRun: true })
    expect(p.dryRun).toBe(true)
    expect(p.removed).toEqual([])
    expect(p.kept.length).toBe(2)
  })
})
