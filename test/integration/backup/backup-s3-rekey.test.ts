import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { completeFakeBackup } from '../../helpers/fake-backup.js'
import path from 'node:path'
import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { kekFromSecret, keyIdOf, newDataKey, unwrapKey, wrapKey } from '../../../src/backup/crypto.js'
import { beginBackup, newBackupId, type BackupManifest } from '../../../src/backup/manifest.js'
import { loadRemoteBackup, pushBackup } from '../../../src/backup/repository/backups.js'
import { rekeyRepository } from '../../../src/backup/repository/rekey.js'
import type { S3Repository } from '../../../src/backup/repository/s3.js'
import { decodeWal, pushWalFile, walKey } from '../../../src/backup/repository/wal.js'
import { tempDir } from '../../helpers/tmp.js'
import { testRepository, useS3Server } from '../../helpers/s3-repo.js'

/**
 * `backup rekey` in an object-store repository (repository/rekey.ts) against a real s3rver
 * process: manifests and WAL object headers are rewrapped under the new key and checked after
 * storing, no data byte changes, objects no offered key opens are reported and left alone, and
 * a rekey that fails half-way (500 on one object's PUT, every attempt) is finished by running
 * it again.
 */
const tmp = tempDir('mf-s3rekey-')
const s3 = useS3Server(['rekey'], tmp)
const backupsDir = path.join(tmp.dir, 'backups')
const walDir = path.join(tmp.dir, 'wal')
const SYSID = '7000000000000000042'
const OLD = kekFromSecret('the-old-key')
const NEW = kekFromSecret('the-new-key')
const FOREIGN = kekFromSecret('somebody-elses-key')

function repo(): S3Repository {
  return testRepository(s3().endpoint, 'rekey', { maxAttempts: 2 })
}

/** An encrypted backup (manifest says so; its one file stands for the ciphertext) stored in `r`. */
async function encryptedBackup(r: S3Repository, kek: Buffer): Promise<{ m: BackupManifest; dataKey: Buffer }> {
  const id = newBackupId('physical')
  const dataKey = newDataKey()
  const partial = await beginBackup(backupsDir, id)
  await fsp.mkdir(path.join(partial, 'base'))
  await fsp.writeFile(path.join(partial, 'base', 'base.tar.lz4.mfenc'), randomBytes(1 << 20))
  const m = await completeFakeBackup(backupsDir, partial, id, {
    systemIdentifier: SYSID,
    encryption: { algorithm: 'aes-256-gcm-frames-v1', keyId: keyIdOf(kek), secretName: 'backup.kek', wrappedKey: wrapKey(kek, dataKey, id), frameSize: 1 << 20 },
  })
  await pushBackup(r, path.join(backupsDir, id), m)
  return { m, dataKey }
}

const SEGS = ['000000010000000000000003', '000000010000000000000004', '000000010000000000000005']
const raws = new Map<string, Buffer>()

/** Three encrypted WAL objects under OLD, one under a foreign key, one not encrypted. */
async function storeWal(r: S3Repository): Promise<void> {
  await fsp.mkdir(walDir, { recursive: true })
  const all = [...SEGS, '000000010000000000000006', '000000010000000000000007']
  for (const n of all) {
    const raw = randomBytes(256 * 1024)
    raws.set(n, raw)
    await fsp.writeFile(path.join(walDir, n), raw)
  }
  for (const n of SEGS) await pushWalFile(r, walDir, n, SYSID, { kek: OLD, secretName: 'backup.kek' })
  await pushWalFile(r, walDir, '000000010000000000000006', SYSID, { kek: FOREIGN, secretName: 'other.kek' })
  await pushWalFile(r, walDir, '000000010000000000000007', SYSID)
}

/** The bytes after a WAL object's header (the ciphertext), which rekey must not change. */
function body(obj: Buffer): Buffer {
  return obj.subarray(8 + obj.readUInt32BE(4))
}

describe('backup rekey in an S3-compatible repository (s3rver process)', { timeout: 120_000 }, () => {
  it('rewraps manifests and WAL headers under the new key, changes no data byte, and skips what the old key cannot open', async () => {
    const r = repo()
    const mine = await encryptedBackup(r, OLD)
    const theirs = await encryptedBackup(r, FOREIGN)
    await storeWal(r)
    const fileKey = `backups/${mine.m.id}/base/base.tar.lz4.mfenc`
    const fileBefore = await r.getBuffer(fileKey)
    const walBefore = new Map(await Promise.all(SEGS.map(async (n) => [n, body((await r.getBuffer(walKey(SYSID, n)))!)] as const)))

    const res = await rekeyRepository(r, [OLD], NEW, 'backup.kek.new')
    expect(res).toEqual({
      repository: 'offsite',
      rewrapped: [mine.m.id],
      skipped: [{ id: theirs.m.id, reason: `no offered key opens it (key id ${keyIdOf(FOREIGN)})` }],
      walRewrapped: 3,
      walUnchanged: 1,
      walSkipped: [{ name: `${SYSID}/000000010000000000000006`, reason: `no offered key opens it (key id ${keyIdOf(FOREIGN)})` }],
    })
    // The manifest opens with the new key only, to the same data key; the data is untouched.
    const after = await loadRemoteBackup(r, mine.m.id)
    expect(after.encryption).toMatchObject({ keyId: keyIdOf(NEW), secretName: 'backup.kek.new' })
    expect(unwrapKey(NEW, after.encryption!.wrappedKey, mine.m.id).equals(mine.dataKey)).toBe(true)
    expect(() => unwrapKey(OLD, after.encryption!.wrappedKey, mine.m.id)).toThrow()
    expect((await r.getBuffer(fileKey))!.equals(fileBefore!)).toBe(true)
    expect((await loadRemoteBackup(r, theirs.m.id)).encryption?.keyId).toBe(keyIdOf(FOREIGN))
    // WAL: same ciphertext, new header; the new key decodes it whole, the old one no longer.
    for (const n of SEGS) {
      const obj = (await r.getBuffer(walKey(SYSID, n)))!
      expect(body(obj).equals(walBefore.get(n)!)).toBe(true)
      expect((await decodeWal(obj, n, SYSID, async () => NEW)).equals(raws.get(n)!)).toBe(true)
      await expect(decodeWal(obj, n, SYSID, async () => OLD)).rejects.toMatchObject({ code: 'E_BACKUP_KEY_MISMATCH' })
    }

    // Run again: nothing left to do.
    const again = await rekeyRepository(r, [OLD], NEW, 'backup.kek.new')
    expect(again.rewrapped).toEqual([])
    expect(again.skipped).toContainEqual({ id: mine.m.id, reason: 'already under the new key' })
    expect(again).toMatchObject({ walRewrapped: 0, walUnchanged: 4 })
    r.destroy()
  })

  it('a rekey that fails on one object (500 on every attempt) names it, and running it again finishes the rest', async () => {
    const r = repo()
    const mine = await encryptedBackup(r, OLD)
    await storeWal(r)
    const victim = SEGS[1]!
    nock(s3().endpoint, { allowUnmocked: true })
      .put((p) => p.includes(victim))
      .times(2)
      .reply(500, '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>boom</Message></Error>')
    const err = await rekeyRepository(r, [OLD], NEW, 'backup.kek.new').catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'E_BACKUP_REPO_IO' })
    expect((err as Error).message).toContain(victim)
    // Every object is whole under one key or the other: the failed one still opens with the old key.
    expect((await decodeWal((await r.getBuffer(walKey(SYSID, victim)))!, victim, SYSID, async () => OLD)).equals(raws.get(victim)!)).toBe(true)
    nock.cleanAll()

    const res = await rekeyRepository(r, [OLD], NEW, 'backup.kek.new')
    expect(res.rewrapped).toEqual([]) // the manifest was done before the failure
    expect(res.skipped).toContainEqual({ id: mine.m.id, reason: 'already under the new key' })
    expect(res.walRewrapped).toBe(2) // the failed one and the one after it
    for (const n of SEGS) expect((await decodeWal((await r.getBuffer(walKey(SYSID, n)))!, n, SYSID, async () => NEW)).equals(raws.get(n)!)).toBe(true)
    r.destroy()
  })
})
