import { randomBytes } from 'node:crypto'
import { existsSync, promises as fsp, readdirSync, readFileSync } from 'node:fs'
import { completeFakeBackup } from '../../helpers/fake-backup.js'
import path from 'node:path'
import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { beginBackup, newBackupId, type BackupManifest } from '../../../src/backup/manifest.js'
import { fetchBackup, listRemote } from '../../../src/backup/repository/backups.js'
import { recoverUploads, RemotePush, UPLOADS_DIR, UploadJournal } from '../../../src/backup/repository/push.js'
import { S3Repository } from '../../../src/backup/repository/s3.js'
import { S3_ACCESS_KEY, S3_SECRET_KEY } from '../../helpers/s3.js'
import { tempDir } from '../../helpers/tmp.js'
import { testRepository, useS3Server } from '../../helpers/s3-repo.js'

/**
 * Streaming a backup file into an object store while it is produced (repository/push.ts),
 * against a real s3rver process: only the files not streamed are uploaded at completion, a
 * stream the network broke is uploaded again from the local copy, and the journal a dead
 * writer left is cleaned up (multipart uploads aborted, objects removed, a complete local
 * backup stored again) without ever listing a partial backup.
 */
const tmp = tempDir('mf-s3stream-')
const backupsDir = path.join(tmp.dir, 'backups')
const BUCKET = 'stream'
const s3 = useS3Server([BUCKET], tmp)
/** A pid that is certainly not running (above the kernel's pid_max). */
const DEAD_PID = 4_194_305

function repo(): S3Repository {
  return testRepository(s3().endpoint, BUCKET, { partSizeMiB: 5, maxAttempts: 3, requestTimeoutSeconds: 5 })
}

/** Counts the whole-file uploads (putFile) a repository makes. */
function countPutFile(r: S3Repository): string[] {
  const calls: string[] = []
  const orig = r.putFile.bind(r)
  r.putFile = (rel, ...rest) => {
    calls.push(rel)
    return orig(rel, ...rest)
  }
  return calls
}

/**
 * Writes a local backup the way physical.ts does: base.tar.lz4 (12 MiB, multipart with 5 MiB
 * parts) produced in 1 MiB chunks, each also handed to `tee` as it is written; then
 * backup_manifest, the manifest, and the rename that completes it.
 */
async function backupWhileStreaming(push?: RemotePush, id = newBackupId('physical')): Promise<BackupManifest> {
  const partial = await beginBackup(backupsDir, id)
  await fsp.mkdir(path.join(partial, 'base'))
  const tee = push?.stream('base/base.tar.lz4')
  const fh = await fsp.open(path.join(partial, 'base', 'base.tar.lz4'), 'w')
  for (let i = 0; i < 12; i++) {
    const c = randomBytes(1 << 20)
    await fh.write(c)
    await tee?.write(c)
  }
  await fh.close()
  await tee?.end()
  await fsp.writeFile(path.join(partial, 'base', 'backup_manifest'), JSON.stringify({ hello: 'world' }))
  const m = await completeFakeBackup(backupsDir, partial, id)
  return m
}

async function expectStoredWhole(r: S3Repository, m: BackupManifest): Promise<void> {
  expect((await listRemote(r)).complete.map((b) => b.id)).toContain(m.id)
  const dest = path.join(tmp.dir, `fetched-${randomBytes(3).toString('hex')}`)
  const f = await fetchBackup(r, m.id, dest)
  expect(f.problems).toEqual([])
  for (const file of m.files) {
    expect(readFileSync(path.join(dest, m.id, file.path)).equals(readFileSync(path.join(backupsDir, m.id, file.path)))).toBe(true)
  }
}

function journals(): string[] {
  const dir = path.join(backupsDir, UPLOADS_DIR)
  return existsSync(dir) ? readdirSync(dir) : []
}

/** s3rver implements no AbortMultipartUpload: answered here, and the test asserts it was sent. */
function expectAbort(times = 1): nock.Scope {
  return nock(s3().endpoint, { allowUnmocked: true }).delete(() => true).query((q) => 'uploadId' in q).times(times).reply(204, '')
}

describe('streaming a backup into an S3-compatible repository (s3rver process)', { timeout: 120_000 }, () => {
  it('uploads base.tar while it is written; completion uploads only the rest and writes the manifest last', async () => {
    const r = repo()
    const calls = countPutFile(r)
    const id = newBackupId('physical')
    const push = await RemotePush.begin(r, backupsDir, id)
    expect(journals()).toEqual([`offsite.${id}.json`])
    const m = await backupWhileStreaming(push, id)
    // The streamed object is there before completion, but the backup is not listed.
    expect((await r.list(`backups/${id}/`)).map((o) => o.key)).toEqual([`backups/${id}/base/base.tar.lz4`])
    const before = await listRemote(r)
    expect(before.complete).toEqual([])
    // The multipart upload ids were journaled as the server handed them out.
    const j = await UploadJournal.read(path.join(backupsDir, UPLOADS_DIR, `offsite.${id}.json`))
    expect(j?.uploads.map((u) => u.key)).toEqual([`backups/${id}/base/base.tar.lz4`])

    await push.complete(path.join(backupsDir, id), m)
    expect(calls).toEqual([`backups/${id}/base/backup_manifest`])
    await expectStoredWhole(r, m)
    expect(journals()).toEqual([])
    r.destroy()
  })

  it('a stream the network broke (reset on every attempt) is uploaded again from the local copy', async () => {
    const r = repo()
    const calls = countPutFile(r)
    const id = newBackupId('physical')
    const scope = nock(s3().endpoint, { allowUnmocked: true })
      .put(() => true)
      .query((q) => q.partNumber === '2')
      .times(3)
      .replyWithError({ code: 'ECONNRESET', message: 'socket hang up' })
    const abort = expectAbort()
    const push = await RemotePush.begin(r, backupsDir, id)
    const m = await backupWhileStreaming(push, id)
    expect(scope.isDone()).toBe(true)
    expect(abort.isDone()).toBe(true)
    expect((await listRemote(r)).complete).toEqual([])
    await push.complete(path.join(backupsDir, id), m)
    expect(calls.sort()).toEqual([`backups/${id}/base/backup_manifest`, `backups/${id}/base/base.tar.lz4`])
    await expectStoredWhole(r, m)
    r.destroy()
  })

  it('a dead writer with a complete local backup: its uploads are aborted, objects removed, and the backup stored again', async () => {
    const r = repo()
    const id = newBackupId('physical')
    const push = await RemotePush.begin(r, backupsDir, id)
    const m = await backupWhileStreaming(push, id)
    // The writer "dies" here: base.tar is stored, backup_manifest and manifest.json are not,
    // and one more multipart upload was begun. Its journal names a pid that is gone.
    const file = path.join(backupsDir, UPLOADS_DIR, `offsite.${id}.json`)
    const j = JSON.parse(readFileSync(file, 'utf8')) as { pid: number; uploads: Array<{ key: string; uploadId: string }> }
    j.pid = DEAD_PID
    j.uploads.push({ key: `backups/${id}/base/backup_manifest`, uploadId: 'begun-by-the-dead-writer' })
    await fsp.writeFile(file, JSON.stringify(j))
    const listed = await listRemote(r)
    expect(listed.complete).toEqual([])
    expect(listed.incomplete).toEqual([expect.objectContaining({ id, state: 'interrupted' })])

    const abort = expectAbort(2)
    const out = await recoverUploads(backupsDir, async () => new S3Repository(r.cfg, { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY }))
    expect(abort.isDone()).toBe(true)
    expect(out).toEqual([{ repository: 'offsite', id, outcome: 'restarted', abortedUploads: 2 }])
    await expectStoredWhole(r, m)
    expect((await listRemote(r)).incomplete).toEqual([])
    expect(journals()).toEqual([])
    r.destroy()
  })

  it('a dead writer whose local backup never completed: everything it uploaded is removed, nothing listed', async () => {
    const r = repo()
    const id = newBackupId('physical')
    const push = await RemotePush.begin(r, backupsDir, id)
    const tee = push.stream('base/base.tar.lz4')
    for (let i = 0; i < 6; i++) await tee.write(randomBytes(1 << 20))
    await tee.end()
    expect((await r.list(`backups/${id}/`)).length).toBe(1)
    const file = path.join(backupsDir, UPLOADS_DIR, `offsite.${id}.json`)
    const j = JSON.parse(readFileSync(file, 'utf8')) as { pid: number }
    j.pid = DEAD_PID
    await fsp.writeFile(file, JSON.stringify(j))

    const abort = expectAbort()
    const out = await recoverUploads(backupsDir, async () => new S3Repository(r.cfg, { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY }))
    expect(abort.isDone()).toBe(true)
    expect(out).toEqual([{ repository: 'offsite', id, outcome: 'removed', abortedUploads: 1 }])
    expect(await r.list(`backups/${id}/`)).toEqual([])
    expect(await listRemote(r)).toEqual({ complete: [], incomplete: [] })
    expect(journals()).toEqual([])
    r.destroy()
  })

  it('a journal of a writer that is still running is left alone', async () => {
    const r = repo()
    const id = newBackupId('physical')
    const push = await RemotePush.begin(r, backupsDir, id)
    expect(await recoverUploads(backupsDir, async () => r)).toEqual([])
    expect(journals()).toEqual([`offsite.${id}.json`])
    await push.abandon()
    expect(journals()).toEqual([])
    r.destroy()
  })
})
