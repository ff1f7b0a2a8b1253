import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kekFromSecret } from '../../../src/backup/crypto.js'
import { S3Repository } from '../../../src/backup/repository/s3.js'
import { encodeWal, walKey } from '../../../src/backup/repository/wal.js'
import { RemoteWalServer, walGetScript } from '../../../src/backup/repository/wal-serve.js'
import { S3RepositoryConfig } from '../../../src/config/repository.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { s3ObjectFile, startS3, S3_ACCESS_KEY, S3_SECRET_KEY, type S3Server } from '../../helpers/s3.js'
import { tempDir } from '../../helpers/tmp.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * The on-demand WAL fetch of a point-in-time restore from an object store (wal-serve.ts and its
 * restore_command client wal-get.ts), against a real S3-compatible server (s3rver, its own
 * process): the client runs as the postgres OS user with an EMPTY environment, exactly as
 * Postgres would run it, and gets each file from the kernel-side server; the server prefetches
 * a bounded number of following segments; a file no repository holds is exit 1 (the normal end
 * of recovery); a damaged object is exit 126 (fatal for Postgres) naming the object. The full
 * restore through Postgres is in test/e2e/backup-s3-dr.test.ts.
 */
const BUCKET = 'walget'
const SYSID = '7000000000000000001'
const KEK = kekFromSecret('wal-get-test-key')
const runAs = postgresRunAs()
const tmp = tempDir('mf-walget-')
const seg = (n: number, tli = 1) => `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`
const raws = new Map<string, Buffer>()
let s3: S3Server
let repo: S3Repository
let server: RemoteWalServer | undefined
let pgDir = ''

function get(name: string, dest = 'pg_wal/RECOVERYXLOG', env: Record<string, string> = {}) {
  const args = [walGetScript(), server!.socketPath, name, dest]
  return execa(process.execPath, args, { cwd: pgDir, env, extendEnv: false, reject: false, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) })
}

const spooled = (dir: string) => readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort()

describe('WAL on demand from the object store (restore_command client + kernel-side server)', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    s3 = await startS3([BUCKET])
    const cfg = S3RepositoryConfig.parse({ name: 'offsite', type: 's3', endpoint: s3.endpoint, bucket: BUCKET, prefix: 'p', accessKeyId: 'secret:a', secretAccessKey: 'secret:b', maxAttempts: 2 })
    repo = new S3Repository(cfg, { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY })
    const names = [...Array.from({ length: 8 }, (_, i) => seg(3 + i)), seg(9, 2), '00000002.history']
    for (const name of names) {
      const raw = name.endsWith('.history') ? Buffer.from('1\t0/9000000\tno recovery target specified\n') : randomBytes(256 << 10)
      raws.set(name, raw)
      await repo.putBuffer(walKey(SYSID, name), await encodeWal(raw, name, SYSID, { kek: KEK, secretName: 'backup.kek' }))
    }
    // Segment 7 is damaged in the store (one flipped byte in the middle of its ciphertext).
    const file = s3ObjectFile(s3, BUCKET, `p/${walKey(SYSID, seg(7))}`)
    const buf = readFileSync(file)
    buf[buf.length - 100] = buf[buf.length - 100]! ^ 0x01
    writeFileSync(file, buf)
    // Stands in for the data dir: the client runs in it and writes pg_wal/RECOVERYXLOG.
    pgDir = path.join(tmp.dir, 'data')
    mkdirSync(path.join(pgDir, 'pg_wal'), { recursive: true })
    chmodSync(tmp.dir, 0o755)
    if (runAs) for (const d of [pgDir, path.join(pgDir, 'pg_wal')]) chownSync(d, runAs.uid, runAs.gid)
    server = await RemoteWalServer.start({ repos: [repo], sysid: SYSID, fromSegNo: 3n, timeline: 1, spoolDir: path.join(tmp.dir, 'spool'), getKek: async () => KEK, runAs, prefetch: 2, parallel: 2 })
  })
  afterAll(async () => {
    await server?.close()
    repo?.destroy()
    await s3?.stop()
    tmp.cleanup()
  })

  it('serves the backup start segment to a client with an empty environment; the restore_command names no secret', async () => {
    const cmd = server!.restoreCommand()
    expect(cmd).toContain('%f %p')
    for (const secret of [S3_SECRET_KEY, KEK.toString('hex'), KEK.toString('base64'), 'wal-get-test-key']) expect(cmd).not.toContain(secret)
    expect(server!.archive().map((s) => s.name)).toContain(seg(10))
    const r = await get(seg(3))
    expect(r.exitCode, String(r.stderr)).toBe(0)
    expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).equals(raws.get(seg(3))!)).toBe(true)
    if (runAs) expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).length).toBeGreaterThan(0)
  })

  it('prefetches the next segments, no more than the bound, and hands each out once asked', async () => {
    const spool = path.join(tmp.dir, 'spool')
    // After segment 3 was asked for: 4 and 5 come ahead (prefetch 2), 6 does not.
    await waitFor('segments 4 and 5 prefetched', async () => spooled(spool).length >= 2, 60_000)
    expect(spooled(spool)).toEqual([seg(4), seg(5)])
    const r = await get(seg(4))
    expect(r.exitCode, String(r.stderr)).toBe(0)
    expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).equals(raws.get(seg(4))!)).toBe(true)
    // Moved out of the spool (not copied); the window moved on to 5 and 6.
    await waitFor('segment 6 prefetched', async () => spooled(spool).includes(seg(6)), 60_000)
    expect(spooled(spool)).not.toContain(seg(4))
    expect(spooled(spool).every((n) => [seg(5), seg(6)].includes(n))).toBe(true)
  })

  it('restore_command takes a prefetched file with the shell alone, and the window still moves on', async () => {
    const spool = path.join(tmp.dir, 'spool')
    const run = (name: string) => {
      const cmd = server!.restoreCommand().replaceAll('%f', name).replaceAll('%p', 'pg_wal/RECOVERYXLOG').replaceAll('%%', '%')
      return execa('sh', ['-c', cmd], { cwd: pgDir, env: {}, extendEnv: false, reject: false, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) })
    }
    const before = server!.stats.served
    for (const n of [5, 6]) {
      await waitFor(`segment ${n} prefetched`, async () => spooled(spool).includes(seg(n)), 60_000)
      const r = await run(seg(n))
      expect(r.exitCode, String(r.stderr)).toBe(0)
      expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).equals(raws.get(seg(n))!)).toBe(true)
    }
    // Segment 8 is fetched only once 6 was taken: the server saw it go without being asked.
    await waitFor('segment 8 prefetched after 6 was taken', async () => spooled(spool).includes(seg(8)), 60_000)
    expect(server!.stats.served).toBe(before + 2)
    // Asked again (Postgres re-reads its last record as recovery ends): copied from the spool's
    // second link to the newest segment, not fetched and decoded again.
    const served = server!.stats.served
    rmSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')) // Postgres removes %p before it runs restore_command
    const again = await run(seg(6))
    expect(again.exitCode, String(again.stderr)).toBe(0)
    expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).equals(raws.get(seg(6))!)).toBe(true)
    expect(server!.stats.served).toBe(served) // the client was not started
    // Not in the spool: the shell hands over to the client (a history file here).
    const h = await run('00000002.history')
    expect(h.exitCode, String(h.stderr)).toBe(0)
    expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).equals(raws.get('00000002.history')!)).toBe(true)
    expect((await run(seg(11))).exitCode).toBe(1)
    // History files no repository holds (the probes Postgres makes for the next timeline and
    // the parent's): "not found" from the shell alone, without starting the client.
    const missing = server!.stats.missing
    for (const name of ['00000001.history', '00000003.history', '00000004.history']) expect((await run(name)).exitCode).toBe(1)
    expect(server!.stats.missing).toBe(missing)
    expect((await run('00000005.history')).exitCode).toBe(1) // past the markers: the client asks, the server says NONE
    expect(server!.stats.missing).toBe(missing + 1)
  })

  it('history files and segments of another timeline are served; what no repository holds is exit 1', async () => {
    const h = await get('00000002.history', 'pg_wal/RECOVERYHISTORY')
    expect(h.exitCode, String(h.stderr)).toBe(0)
    expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYHISTORY')).equals(raws.get('00000002.history')!)).toBe(true)
    const t2 = await get(seg(9, 2))
    expect(t2.exitCode, String(t2.stderr)).toBe(0)
    expect(readFileSync(path.join(pgDir, 'pg_wal/RECOVERYXLOG')).equals(raws.get(seg(9, 2))!)).toBe(true)
    expect((await get('00000003.history')).exitCode).toBe(1)
    expect((await get(seg(11))).exitCode).toBe(1)
    expect((await get(seg(2))).exitCode).toBe(1) // before the backup: never asked for, not served
    expect((await get('../../etc/passwd')).exitCode).toBe(1)
  })

  it('a flipped byte in a WAL object: exit 126 (fatal for Postgres) naming it, and the server keeps the error', async () => {
    expect(server!.failure).toBeUndefined() // prefetching it (nobody asked yet) is no failure
    const r = await get(seg(7))
    expect(r.exitCode).toBe(126)
    expect(String(r.stderr)).toContain(seg(7))
    expect(server!.failure).toMatchObject({ code: 'E_BACKUP_VERIFY_FAILED' })
    expect(server!.failure!.message).toContain(seg(7))
    expect(existsSync(path.join(tmp.dir, 'spool', seg(7)))).toBe(false)
  })

  it('once the restore is over (server closed): a segment is fatal instead of ending recovery, a history file is not found', async () => {
    await server!.close()
    const r = await get(seg(8))
    expect(r.exitCode).toBe(126)
    expect(String(r.stderr)).toContain('unreachable')
    // A history file asked for then is "not found": Postgres probes them as it leaves recovery,
    // after recovery.signal is gone, when the restore may already have closed the server.
    const h = await get('00000005.history', 'pg_wal/RECOVERYHISTORY')
    expect(h.exitCode).toBe(1)
    server = undefined
  })
})
