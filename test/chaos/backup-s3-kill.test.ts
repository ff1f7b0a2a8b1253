import { execa } from 'execa'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
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
 * kill -9 of the kernel while a backup is being uploaded to an object store: the backup must
 * never be listed there as complete, and `backup prune --repo` removes what the dead writer
 * left. The kernel reaches the S3 server (s3rver, its own process) through a throttling TCP
 * proxy, so the upload takes long enough to be killed in the middle. Needs the built CLI.
 */
const BUCKET = 'chaos'

interface Listed {
  backups: Array<{ id: string }>
  incomplete: Array<{ id: string; state: string }>
}

/** Forwards to `port`, letting through about `bytesPerSecond` from the client. */
async function throttlingProxy(port: number, bytesPerSecond: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.on('data', (chunk: Buffer) => {
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
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

describe('chaos: kill -9 of the kernel mid-upload to an object store', { timeout: 300_000 }, () => {
  let f: Flock
  let s3: S3Server
  let proxy: { port: number; close(): void }

  beforeAll(async () => {
    s3 = await startS3([BUCKET])
    proxy = await throttlingProxy(s3.port, 512 * 1024)
    f = await createFlock()
    writeFileSync(
      path.join(f.projectDir, 'magflock.yaml'),
      [
        `postgres:\n  port: ${f.pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${f.metricsPort}`,
        'backup:',
        '  walArchiving: false',
        '  repositories:',
        `    - { name: offsite, type: s3, endpoint: "http://127.0.0.1:${proxy.port}", bucket: ${BUCKET}, prefix: k, accessKeyId: "secret:s3.id", secretAccessKey: "secret:s3.key" }`,
        '',
      ].join('\n'),
    )
    for (const [n, v] of [['s3.id', S3_ACCESS_KEY], ['s3.key', S3_SECRET_KEY]] as const) {
      expect((await f.run(['secrets', 'set', n, '--from-stdin', '--json'], { input: v + '\n' })).exitCode).toBe(0)
    }
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
  })
  afterAll(async () => {
    await f?.destroy()
    proxy?.close()
    await s3?.stop()
  })

  it('the half-uploaded backup is never listed complete, and prune --repo removes it', async () => {
    const create = execa(NODE, [RUN_JS, 'backup', 'create', '--json'], { cwd: f.projectDir, env: f.env, reject: false })
    // The first object of the backup has arrived: the upload is under way.
    const objectsDir = path.join(s3.dir, BUCKET, 'k', 'backups')
    const id = await waitFor('the upload to start', async () => (existsSync(objectsDir) ? readdirSync(objectsDir)[0] : undefined), 120_000, 20)
    const info = await readKernelInfo(f.layout)
    process.kill(info!.pid, 'SIGKILL')
    await create
    await waitFor('the kernel to be gone', async () => !isProcessAliveSync(info!.pid))
    expect(existsSync(path.join(objectsDir, id, 'manifest.json._S3rver_object'))).toBe(false)

    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const l = await f.run<Listed>(['backup', 'list', '--repo', 'offsite', '--json'])
    expect(l.exitCode, l.stdout + l.stderr).toBe(0)
    const listed = (l.json as { data: Listed }).data
    expect(listed.backups).toEqual([])
    expect(listed.incomplete).toEqual([expect.objectContaining({ id, state: 'interrupted' })])
    const restore = await f.run(['backup', 'restore', id, '--repo', 'offsite', '--to-instance', 'half', '--json'])
    expect(restore.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_INCOMPLETE' } })

    const p = await f.run<{ leftoversRemoved: string[] }>(['backup', 'prune', '--repo', 'offsite', '--keep-last', '1', '--json'])
    expect(p.exitCode, p.stdout + p.stderr).toBe(0)
    expect((p.json as { data: { leftoversRemoved: string[] } }).data.leftoversRemoved).toEqual([id])
    const after = (await f.run<Listed>(['backup', 'list', '--repo', 'offsite', '--json'])).json as { data: Listed }
    expect(after.data).toMatchObject({ backups: [], incomplete: [] })
  })
})
