import { execa } from 'execa'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { startS3, S3_ACCESS_KEY, S3_SECRET_KEY, type S3Server } from '../helpers/s3.js'
import { waitFor } from '../helpers/wait.js'

/**
 * kill -9 of the kernel while a backup is being uploaded to an object store (the backup
 * streams base.tar into the repository while pg_basebackup writes it): the backup must never
 * be listed there as complete, and the next kernel cleans up by itself — it aborts the
 * multipart uploads the dead writer began (from its upload journal), deletes the partial
 * objects, and, when the local backup had completed, stores it again from scratch. The kernel
 * reaches the S3 server (s3rver, its own process) through a throttling TCP proxy, so the
 * upload takes long enough to be killed in the middle; the proxy also records the DELETE
 * requests (s3rver itself implements no AbortMultipartUpload, so the test checks that one was
 * sent for every multipart upload s3rver still holds unfinished). Needs the built CLI.
 */
const BUCKET = 'chaos'

interface Listed {
  backups: Array<{ id: string }>
  incomplete: Array<{ id: string; state: string }>
}

interface Proxy {
  port: number
  /** Paths (with query) of every DELETE request sent through the proxy. */
  deletes: Set<string>
  close(): void
}

/** Forwards to `port`, letting through about `bytesPerSecond` from the client. */
async function throttlingProxy(port: number, bytesPerSecond: number): Promise<Proxy> {
  const sockets = new Set<net.Socket>()
  const deletes = new Set<string>()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client).add(upstream)
    let tail = ''
    client.on('data', (chunk: Buffer) => {
      const text = tail + chunk.toString('latin1')
      for (const m of text.matchAll(/DELETE (\/\S+) HTTP\/1\.1/g)) deletes.add(m[1]!)
      tail = text.slice(-512)
      client.pause()
      upstream.write(chunk)
      setTimeout(() => client.resume(), Math.ceil((chunk.length / bytesPerSecond) * 1000))
    })
    upstream.pipe(client)
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    port: (server.address() as net.AddressInfo).port,
    deletes,
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

describe('chaos: kill -9 of the kernel mid-upload to an object store', { timeout: 300_000 }, () => {
  let f: Flock
  let s3: S3Server
  let proxy: Proxy
  const objectsDir = () => path.join(s3.dir, BUCKET, 'k', 'backups')
  /** Multipart uploads s3rver holds unfinished (a finished one's directory is removed). */
  const unfinishedUploads = () => {
    const d = path.join(s3.dir, BUCKET, '._S3rver_uploads')
    return existsSync(d) ? readdirSync(d) : []
  }
  /** Multipart upload ids the writer's journal holds for backup `id`. */
  const journaled = (id: string): string[] => {
    try {
      const j = JSON.parse(readFileSync(path.join(f.layout.backupsDir, '.uploads', `offsite.${id}.json`), 'utf8')) as { uploads: Array<{ uploadId: string }> }
      return j.uploads.map((u) => u.uploadId)
    } catch {
      return []
    }
  }
  const list = async (): Promise<Listed> => {
    const l = await f.run<Listed>(['backup', 'list', '--repo', 'offsite', '--json'])
    expect(l.exitCode, l.stdout + l.stderr).toBe(0)
    return (l.json as { data: Listed }).data
  }
  const killKernel = async () => {
    const info = await readKernelInfo(f.layout)
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to be gone', async () => !isProcessAliveSync(info!.pid))
  }

  beforeAll(async () => {
    s3 = await startS3([BUCKET])
    proxy = await throttlingProxy(s3.port, 2 * 1024 * 1024)
    f = await createFlock()
    writeFileSync(
      path.join(f.projectDir, 'magflock.yaml'),
      [
        `postgres:\n  port: ${f.pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${f.metricsPort}`,
        'backup:',
        '  walArchiving: false',
        '  repositories:',
        `    - { name: offsite, type: s3, endpoint: "http://127.0.0.1:${proxy.port}", bucket: ${BUCKET}, prefix: k, partSizeMiB: 5, accessKeyId: "secret:s3.id", secretAccessKey: "secret:s3.key" }`,
        '',
      ].join('\n'),
    )
    for (const [n, v] of [['s3.id', S3_ACCESS_KEY], ['s3.key', S3_SECRET_KEY]] as const) {
      expect((await f.run(['secrets', 'set', n, '--from-stdin', '--json'], { input: v + '\n' })).exitCode).toBe(0)
    }
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    // Enough data that base.tar.lz4 spans several 5 MiB parts (random text compresses poorly).
    const c = await f.connect()
    try {
      await c.query("create table filler as select i, md5(random()::text) || md5(random()::text) as t from generate_series(1, 300000) i")
    } finally {
      await c.end()
    }
  })
  afterAll(async () => {
    await f?.destroy()
    proxy?.close()
    await s3?.stop()
  })

  it('killed while pg_basebackup streams into the repository: the next kernel aborts the uploads and removes every object', async () => {
    const create = execa(NODE, [RUN_JS, 'backup', 'create', '--json'], { cwd: f.projectDir, env: f.env, reject: false })
    // A multipart upload of base.tar is under way (the writer has journaled its id) while the
    // local backup is still partial. (An upload begun in the instant before its id is
    // journaled is found by ListMultipartUploads on servers that implement it; s3rver does not.)
    const id = await waitFor(
      'the streamed upload to start',
      async () => {
        const partial = readdirSync(f.layout.backupsDir).find((n) => n.endsWith('.partial'))
        if (!partial) return undefined
        const id = partial.slice(0, -'.partial'.length)
        return unfinishedUploads().length > 0 && journaled(id).length > 0 ? id : undefined
      },
      120_000,
      20,
    )
    await killKernel()
    await create
    const begun = unfinishedUploads()
    expect(begun.length).toBeGreaterThan(0)
    expect(existsSync(path.join(objectsDir(), id, 'manifest.json._S3rver_object'))).toBe(false)

    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    // Never listed complete, and cleaned up without anyone running prune.
    expect((await list()).backups).toEqual([])
    await waitFor('the interrupted upload to be cleaned up', async () => {
      const l = await list()
      return l.incomplete.length === 0 && (!existsSync(objectsDir()) || readdirSync(objectsDir()).length === 0)
    }, 120_000)
    for (const u of begun) expect([...proxy.deletes].some((d) => d.includes(`backups/${id}/`) && d.includes(`uploadId=${u}`)), `abort of upload ${u}`).toBe(true)
    expect(existsSync(path.join(f.layout.backupsDir, `${id}.partial`))).toBe(false)
    const restore = await f.run(['backup', 'restore', id, '--repo', 'offsite', '--to-instance', 'half', '--json'])
    expect(restore.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_NOT_FOUND' } })
  })

  it('killed after the local backup completed, mid-upload: the next kernel stores it again from scratch, whole', async () => {
    const create = execa(NODE, [RUN_JS, 'backup', 'create', '--json'], { cwd: f.projectDir, env: f.env, reject: false })
    // Complete locally (renamed from .partial), not yet in the repository (no manifest there),
    // with the multipart upload of a file written at the end (pg_wal.tar) under way.
    const id = await waitFor(
      'the local backup to complete while the upload runs',
      async () =>
        readdirSync(f.layout.backupsDir).find(
          (n) => /^\d{8}T\d{6}Z-p-[0-9a-f]{6}$/.test(n) && !existsSync(path.join(objectsDir(), n, 'manifest.json._S3rver_object')) && unfinishedUploads().some((u) => journaled(n).includes(u)),
        ),
      180_000,
      20,
    )
    await killKernel()
    await create
    expect(existsSync(path.join(objectsDir(), id, 'manifest.json._S3rver_object'))).toBe(false)
    const begun = unfinishedUploads()
    expect(begun.length).toBeGreaterThan(0)

    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const listed = await waitFor('the backup to be stored again', async () => {
      const l = await list()
      return l.backups.some((b) => b.id === id) ? l : undefined
    }, 180_000)
    expect(listed.incomplete).toEqual([])
    for (const u of begun) expect([...proxy.deletes].some((d) => d.includes(`uploadId=${u}`)), `abort of upload ${u}`).toBe(true)
    const v = await f.run(['backup', 'verify', id, '--repo', 'offsite', '--no-deep', '--json'])
    expect(v.exitCode, v.stdout + v.stderr).toBe(0)
    expect(v.json).toMatchObject({ ok: true, data: { ok: true } })
  })
})
