import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { completeFakeBackup } from '../../helpers/fake-backup.js'
import path from 'node:path'
import { Readable } from 'node:stream'
import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { kekFromSecret } from '../../../src/backup/crypto.js'
import { beginBackup, newBackupId, type BackupManifest } from '../../../src/backup/manifest.js'
import { cleanupRemote, fetchBackup, listRemote, pushBackup, remoteReader } from '../../../src/backup/repository/backups.js'
import { extractPhysical } from '../../../src/backup/extract.js'
import { restorePhysical } from '../../../src/backup/restore.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import type { S3Repository } from '../../../src/backup/repository/s3.js'
import { applyRetention } from '../../../src/backup/repository/service.js'
import { WalShipper } from '../../../src/backup/repository/shipper.js'
import type { BackupDeps } from '../../../src/backup/service.js'
import { decodeWal, encodeWal, fetchWal, pushWalFile } from '../../../src/backup/repository/wal.js'
import { s3ObjectFile, S3_ACCESS_KEY, S3_SECRET_KEY } from '../../helpers/s3.js'
import { tempDir } from '../../helpers/tmp.js'
import { testRepository, useS3Server } from '../../helpers/s3-repo.js'

/**
 * The object-store repository layer against a real S3-compatible server (s3rver, its own
 * process on 127.0.0.1), with HTTP faults injected by nock in front of it: throttling, 500 on
 * CompleteMultipartUpload, connection resets mid-part, slow responses, wrong credentials, and
 * a flipped byte in a stored object.
 */
const tmp = tempDir('mf-s3repo-')
const backupsDir = path.join(tmp.dir, 'backups')
const BUCKET = 'backups'
const s3 = useS3Server([BUCKET], tmp)

function repo(over: Partial<Record<string, unknown>> = {}, creds = { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY }): S3Repository {
  // nock's failed mock sockets only give up after the connection timeout (1 s here).
  return testRepository(s3().endpoint, BUCKET, { partSizeMiB: 5, maxAttempts: 3, requestTimeoutSeconds: 2, ...over }, creds)
}

/** A complete local backup of random files (12 MiB base file: multipart with 5 MiB parts). */
async function fakeBackup(lsn: { start: string; stop: string } = { start: '0/2000028', stop: '0/2000100' }): Promise<BackupManifest> {
  const id = newBackupId('physical')
  const partial = await beginBackup(backupsDir, id)
  await fsp.mkdir(path.join(partial, 'base'))
  await fsp.writeFile(path.join(partial, 'base', 'base.tar.lz4'), randomBytes(12 << 20))
  await fsp.writeFile(path.join(partial, 'base', 'backup_manifest'), JSON.stringify({ hello: 'world' }))
  const m = await completeFakeBackup(backupsDir, partial, id, { startLsn: lsn.start, stopLsn: lsn.stop })
  return m
}

/** A local backup whose base.tar.lz4 is a real lz4 tar (a 12 MiB file: two ranges), so a restore extracts it. */
async function tarBackup(): Promise<{ m: BackupManifest; content: Buffer }> {
  const id = newBackupId('physical')
  const partial = await beginBackup(backupsDir, id)
  await fsp.mkdir(path.join(partial, 'base'))
  const src = path.join(tmp.dir, `tar-src-${id}`)
  await fsp.mkdir(src)
  const content = randomBytes(12 << 20)
  writeFileSync(path.join(src, 'blob'), content)
  execFileSync('bash', ['-o', 'pipefail', '-ec', 'tar -cf - -C "$1" . | lz4 -q -z - "$2"', 'tar', src, path.join(partial, 'base', 'base.tar.lz4')])
  await fsp.writeFile(path.join(partial, 'base', 'backup_manifest'), JSON.stringify({ hello: 'world' }))
  return { m: await completeFakeBackup(backupsDir, partial, id), content }
}

/**
 * The second 8 MiB range of base.tar.lz4 answers 206 and 1 MiB of body, then the connection
 * resets (`times` times; afterwards the real server answers).
 */
function resetMidRange(times: number): nock.Scope {
  return nock(s3().endpoint, { allowUnmocked: true })
    .get((uri) => uri.includes('/base/base.tar.lz4'))
    .query(true)
    .matchHeader('range', /^bytes=8388608-/)
    .times(times)
    .reply(206, () => {
      const body = new Readable({ read() {} })
      body.push(Buffer.alloc(1 << 20))
      setImmediate(() => body.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })))
      return body
    })
}

async function expectNothingLeft(r: S3Repository, id: string): Promise<void> {
  const l = await listRemote(r)
  expect(l.complete.map((b) => b.id)).not.toContain(id)
  expect(l.incomplete.map((b) => b.id)).not.toContain(id)
  expect(await r.list(`backups/${id}/`)).toEqual([])
}

/**
 * s3rver implements neither AbortMultipartUpload nor ListMultipartUploads: the abort is
 * answered here, and the test asserts it was sent (the upload's parts are released).
 */
function expectAbort(): nock.Scope {
  return nock(s3().endpoint, { allowUnmocked: true }).delete(() => true).query((q) => 'uploadId' in q).reply(204, '')
}

const xml = (code: string, msg: string) => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${msg}</Message><RequestId>1</RequestId></Error>`

describe('S3-compatible repository (s3rver process) with HTTP faults (nock)', { timeout: 120_000 }, () => {
  it('stores a backup (multipart), lists it only once the manifest is there, and reads it back byte for byte', async () => {
    const r = repo()
    const m = await fakeBackup()
    expect((await listRemote(r)).complete).toEqual([])
    await pushBackup(r, path.join(backupsDir, m.id), m)
    const l = await listRemote(r)
    expect(l.complete.map((b) => b.id)).toEqual([m.id])
    expect(l.incomplete).toEqual([])
    const dest = path.join(tmp.dir, 'fetched')
    const f = await fetchBackup(r, m.id, dest)
    expect(f.problems).toEqual([])
    for (const file of m.files) {
      expect(readFileSync(path.join(dest, m.id, file.path)).equals(readFileSync(path.join(backupsDir, m.id, file.path)))).toBe(true)
    }
    expect(JSON.parse(readFileSync(path.join(dest, m.id, 'manifest.json'), 'utf8')).id).toBe(m.id)
    r.destroy()
  })

  it('503 SlowDown on parts: retried with backoff, then stored', async () => {
    const r = repo()
    const m = await fakeBackup()
    const scope = nock(s3().endpoint, { allowUnmocked: true })
      .put(() => true)
      .query((q) => q.partNumber === '1')
      .times(2)
      .reply(503, xml('SlowDown', 'Please reduce your request rate.'))
    await pushBackup(r, path.join(backupsDir, m.id), m)
    expect(scope.isDone()).toBe(true)
    expect((await listRemote(r)).complete.map((b) => b.id)).toEqual([m.id])
    r.destroy()
  })

  it('500 on every CompleteMultipartUpload: bounded retries, an error naming the object, the upload aborted, nothing listed', async () => {
    const r = repo()
    const m = await fakeBackup()
    const scope = nock(s3().endpoint, { allowUnmocked: true })
      .post(() => true)
      .query((q) => 'uploadId' in q)
      .times(3)
      .reply(500, xml('InternalError', 'We encountered an internal error.'))
    const abort = expectAbort()
    const err = await pushBackup(r, path.join(backupsDir, m.id), m).catch((e: unknown) => e)
    expect(scope.isDone()).toBe(true) // exactly maxAttempts = 3 tries
    expect(abort.isDone()).toBe(true)
    expect(err).toMatchObject({ code: 'E_BACKUP_REPO_IO' })
    expect((err as Error).message).toContain(`backups/${m.id}/base/base.tar.lz4`)
    expect((err as Error).message).toMatch(/after 3 attempt/)
    await expectNothingLeft(r, m.id)
    r.destroy()
  })

  it('connection reset mid-part on every attempt: a clear error naming the object, nothing listed or left', async () => {
    const r = repo()
    const m = await fakeBackup()
    nock(s3().endpoint, { allowUnmocked: true })
      .put(() => true)
      .query((q) => q.partNumber === '2')
      .times(3)
      .replyWithError({ code: 'ECONNRESET', message: 'socket hang up' })
    const abort = expectAbort()
    const err = await pushBackup(r, path.join(backupsDir, m.id), m).catch((e: unknown) => e)
    expect(abort.isDone()).toBe(true)
    expect(err).toMatchObject({ code: 'E_BACKUP_REPO_IO' })
    expect((err as Error).message).toContain('base/base.tar.lz4')
    await expectNothingLeft(r, m.id)
    r.destroy()
  })

  it('a reset once and a slow 503 once are retried and the backup is stored', async () => {
    const r = repo()
    const m = await fakeBackup()
    const scope = nock(s3().endpoint, { allowUnmocked: true })
      .put(() => true)
      .query((q) => q.partNumber === '2')
      .replyWithError({ code: 'ECONNRESET', message: 'socket hang up' })
      .put(() => true)
      .query((q) => q.partNumber === '3')
      .delay(1500)
      .reply(503, xml('SlowDown', 'Please reduce your request rate.'))
    await pushBackup(r, path.join(backupsDir, m.id), m)
    expect(scope.isDone()).toBe(true)
    const f = await fetchBackup(r, m.id, undefined)
    expect(f.problems).toEqual([])
    r.destroy()
  })

  // nock's mock socket never fires the SDK's socket timeout, so "slow" is a response that
  // takes a while and then times out (ETIMEDOUT), which the SDK treats like its own timeout.
  it('slow responses timing out on every attempt: bounded retries, then an error naming the object', async () => {
    const r = repo()
    const m = await fakeBackup()
    const scope = nock(s3().endpoint, { allowUnmocked: true })
      .put((uri) => uri.endsWith('backup_manifest'))
      .query(true)
      .times(3)
      .delay(800)
      .replyWithError({ code: 'ETIMEDOUT', message: 'request timed out' })
    const err = await pushBackup(r, path.join(backupsDir, m.id), m).catch((e: unknown) => e)
    expect(scope.isDone()).toBe(true)
    expect(err).toMatchObject({ code: 'E_BACKUP_REPO_IO' })
    expect((err as Error).message).toContain('base/backup_manifest')
    await expectNothingLeft(r, m.id)
    r.destroy()
  })

  it('wrong credentials: E_BACKUP_REPO_AUTH with a hint naming the vault secrets', async () => {
    const r = repo({}, { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'x' })
    const m = await fakeBackup()
    const err = await pushBackup(r, path.join(backupsDir, m.id), m).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'E_BACKUP_REPO_AUTH' })
    expect((err as { hint?: string }).hint).toContain('s3.id')
    expect((err as Error).message).not.toContain('NOT-A-KEY-SECRET')
    const list = await listRemote(r).catch((e: unknown) => e)
    expect(list).toMatchObject({ code: 'E_BACKUP_REPO_AUTH' })
    r.destroy()
  })

  it('a flipped byte in a stored object: verification names the file and a read-back for restore refuses', async () => {
    const r = repo()
    const m = await fakeBackup()
    await pushBackup(r, path.join(backupsDir, m.id), m)
    const file = s3ObjectFile(s3(), BUCKET, r.key(`backups/${m.id}/base/base.tar.lz4`))
    const b = readFileSync(file)
    b[1234567] = b[1234567]! ^ 0x01
    writeFileSync(file, b)
    const check = await fetchBackup(r, m.id, undefined)
    expect(check.problems).toEqual([{ file: 'base/base.tar.lz4', reason: 'sha256 does not match the manifest' }])
    const dest = path.join(tmp.dir, 'refused')
    const err = await fetchBackup(r, m.id, dest).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'E_BACKUP_VERIFY_FAILED' })
    expect((err as Error).message).toContain('base/base.tar.lz4')
    await expect(fsp.access(path.join(dest, m.id))).rejects.toThrow() // nothing left behind
    r.destroy()
  })

  it('streamed read-back (remoteReader): ranges in order from any offset; a flipped byte fails extraction naming the object', async () => {
    const r = repo()
    const m = await fakeBackup()
    await pushBackup(r, path.join(backupsDir, m.id), m)
    const reader = remoteReader(r, m)
    expect((await reader.names('base')).sort()).toEqual(['backup_manifest', 'base.tar.lz4'])
    const local = readFileSync(path.join(backupsDir, m.id, 'base/base.tar.lz4'))
    const read = async (start?: number) => Buffer.concat(await (await reader.open('base/base.tar.lz4', start)).toArray())
    // 12 MiB: two ranges, handed on in order.
    expect((await read()).equals(local)).toBe(true)
    expect((await read(9_000_001)).equals(local.subarray(9_000_001))).toBe(true)
    // An intact object that is no lz4 stream: the tool's failure, not the object's.
    const intact = path.join(tmp.dir, 'streamed-intact')
    await fsp.mkdir(intact)
    const ok = await extractPhysical({ dir: '', manifest: m, dataKey: undefined, dataDir: intact, reader }).catch((e: unknown) => e)
    expect(ok).toMatchObject({ code: 'E_BACKUP_TOOL_FAILED' })
    const file = s3ObjectFile(s3(), BUCKET, r.key(`backups/${m.id}/base/base.tar.lz4`))
    const b = readFileSync(file)
    b[10_000_000] = b[10_000_000]! ^ 0x01
    writeFileSync(file, b)
    const data = path.join(tmp.dir, 'streamed-damaged')
    await fsp.mkdir(data)
    const err = await extractPhysical({ dir: '', manifest: m, dataKey: undefined, dataDir: data, reader }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'E_BACKUP_VERIFY_FAILED' })
    expect((err as Error).message).toContain('base/base.tar.lz4')
    r.destroy()
  })

  it('restore streamed from the repository: a connection reset mid-range is read again; on every attempt, an error naming the object and no restored data dir', async () => {
    const r = repo()
    const { m, content } = await tarBackup()
    await pushBackup(r, path.join(backupsDir, m.id), m)
    const bins = findPgBinaries()
    const runAs = postgresRunAs()

    const once = resetMidRange(1)
    const ok = path.join(tmp.dir, 'reset-once', 'data')
    await restorePhysical({ backupsDir, id: m.id, dataDir: ok, port: 1, bins, runAs, start: false, reader: remoteReader(r, m) })
    expect(once.isDone()).toBe(true)
    expect(readFileSync(path.join(ok, 'blob')).equals(content)).toBe(true)

    const always = resetMidRange(3) // repo(): maxAttempts 3
    const bad = path.join(tmp.dir, 'reset-always', 'data')
    const err = await restorePhysical({ backupsDir, id: m.id, dataDir: bad, port: 1, bins, runAs, start: false, reader: remoteReader(r, m) }).catch((e: unknown) => e)
    expect(always.isDone()).toBe(true)
    expect(err).toMatchObject({ code: 'E_BACKUP_REPO_IO' })
    expect((err as Error).message).toContain(`backups/${m.id}/base/base.tar.lz4`)
    expect((err as Error).message).toMatch(/after 3 attempt/)
    // Nothing half-restored: the target (and the parent the restore made) is gone.
    await expect(fsp.access(path.dirname(bad))).rejects.toThrow()
    r.destroy()
  })

  it('leftovers of a dead writer are listed as interrupted, never complete, and prune removes them', async () => {
    const r = repo()
    const m = await fakeBackup()
    // What a writer killed before its manifest leaves: data objects, no manifest.
    await r.putFile(`backups/${m.id}/base/base.tar.lz4`, path.join(backupsDir, m.id, 'base/base.tar.lz4'))
    const l = await listRemote(r)
    expect(l.complete).toEqual([])
    expect(l.incomplete).toEqual([expect.objectContaining({ id: m.id, state: 'interrupted' })])
    expect(await cleanupRemote(r, false)).toEqual([m.id])
    await expectNothingLeft(r, m.id)
    r.destroy()
  })

  it('WAL objects: zstd + envelope encryption round trip; a flipped byte and a wrong key are refused', async () => {
    const raw = Buffer.alloc(16 << 20)
    randomBytes(1 << 20).copy(raw, 0) // a mostly empty segment, like a switched one
    const kek = kekFromSecret('wal-test-key')
    const name = '000000010000000000000003'
    const obj = await encodeWal(raw, name, '42', { kek, secretName: 'backup.kek' })
    expect(obj.length).toBeLessThan(raw.length / 4)
    expect((await decodeWal(obj, name, '42', async () => kek)).equals(raw)).toBe(true)
    const flipped = Buffer.from(obj)
    flipped[flipped.length - 100] = flipped[flipped.length - 100]! ^ 0x80
    await expect(decodeWal(flipped, name, '42', async () => kek)).rejects.toMatchObject({ code: 'E_BACKUP_VERIFY_FAILED' })
    await expect(decodeWal(obj, name, '42', async () => kekFromSecret('other'))).rejects.toMatchObject({ code: 'E_BACKUP_KEY_MISMATCH' })
    await expect(decodeWal(obj, '000000010000000000000004', '42', async () => kek)).rejects.toMatchObject({ code: 'E_BACKUP_VERIFY_FAILED' })

    // Pushed and read back from the server into an empty directory.
    const r = repo()
    const walDir = path.join(tmp.dir, 'wal-src')
    await fsp.mkdir(walDir, { recursive: true })
    writeFileSync(path.join(walDir, name), raw)
    await pushWalFile(r, walDir, name, '42', { kek, secretName: 'backup.kek' })
    const dest = path.join(tmp.dir, 'wal-dest')
    const got = await fetchWal({ repos: [r], sysid: '42', fromSegNo: 0n, destDir: dest, getKek: async () => kek })
    expect(got).toEqual([name])
    expect(readFileSync(path.join(dest, name)).equals(raw)).toBe(true)
    r.destroy()
  })

  it('WAL shipping: every closed segment and history file to every repository, the local cache trimmed only of what all hold', async () => {
    const walDir = path.join(tmp.dir, 'wal-cache')
    await fsp.mkdir(walDir, { recursive: true })
    const seg = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`
    for (let n = 1; n <= 5; n++) writeFileSync(path.join(walDir, seg(n)), randomBytes(64 << 10))
    writeFileSync(path.join(walDir, '00000002.history'), '1\t0/5000000\tno recovery target specified\n')
    writeFileSync(path.join(walDir, `${seg(6)}.partial`), randomBytes(1024))
    const r1 = repo()
    const r2 = repo({ name: 'second' })
    const shipper = new WalShipper({ walDir, repos: [r1, r2], sysid: '99', cacheSegments: 2 })
    await shipper.init()
    const t = await shipper.tick()
    expect(t.pushed).toHaveLength(12) // 5 segments + 1 history file, to each of two repositories
    expect(t.evicted).toEqual([seg(1), seg(2), seg(3)])
    expect(readdirSync(walDir).sort()).toEqual(['00000002.history', seg(4), seg(5), `${seg(6)}.partial`].sort())
    for (const r of [r1, r2]) {
      const names = (await r.list('wal/99/')).map((o) => o.key.split('/').pop()).sort()
      expect(names).toEqual(['00000002.history', seg(1), seg(2), seg(3), seg(4), seg(5)].sort())
    }
    // A repository that refuses: nothing is evicted that it does not hold.
    const bad = repo({ name: 'bad' }, { accessKeyId: 'NOPE', secretAccessKey: 'x' })
    const shipper2 = new WalShipper({ walDir, repos: [r1, bad], sysid: '99', cacheSegments: 1 })
    await shipper2.init().catch(() => undefined)
    for (let n = 7; n <= 8; n++) writeFileSync(path.join(walDir, seg(n)), randomBytes(64 << 10))
    await expect(shipper2.tick()).rejects.toMatchObject({ code: 'E_BACKUP_REPO_AUTH' })
    expect(readdirSync(walDir).filter((n) => !n.endsWith('.partial') && !n.endsWith('.history')).sort()).toEqual([seg(4), seg(5), seg(7), seg(8)])
    for (const r of [r1, r2, bad]) r.destroy()
  })

  it('automatic retention per repository: old backups go, WAL a kept backup needs stays', async () => {
    const r = repo()
    const sysid = '7000000000000000001'
    const ids: string[] = []
    for (const [start, stop] of [['0/1000028', '0/1000100'], ['0/3000028', '0/3000100'], ['0/5000028', '0/5000100']] as const) {
      const m = await fakeBackup({ start, stop })
      await pushBackup(r, path.join(backupsDir, m.id), m)
      ids.push(m.id)
      await new Promise((res) => setTimeout(res, 10))
    }
    const walDir = path.join(tmp.dir, 'wal-ret')
    await fsp.mkdir(walDir, { recursive: true })
    const names = [1, 2, 3, 4, 5, 6].map((n) => `00000001000000000000000${n}`)
    for (const n of names) {
      writeFileSync(path.join(walDir, n), randomBytes(1024))
      await pushWalFile(r, walDir, n, sysid)
    }
    const deps = {
      config: () => ({ backup: { retention: {}, repositories: [{ ...r.cfg, retention: { keepLast: 1 } }] } }),
      secrets: { get: async (n: string) => (n === 's3.id' ? S3_ACCESS_KEY : n === 's3.key' ? S3_SECRET_KEY : undefined) },
    } as unknown as BackupDeps
    const res = await applyRetention(deps)
    expect(res).toEqual([{ repository: 'offsite', removed: [ids[0], ids[1]], walRemoved: 4 }])
    expect((await listRemote(r)).complete.map((b) => b.id)).toEqual([ids[2]])
    const left = (await r.list(`wal/${sysid}/`)).map((o) => o.key.split('/').pop()).sort()
    expect(left).toEqual([names[4], names[5]]) // from the kept backup's start segment (…05) on
    r.destroy()
  })
})
