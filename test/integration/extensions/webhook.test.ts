import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backupCreate } from '../../../src/api/backup.js'
import { extDisable, extEnable, extInstall, extLogs, extRemove } from '../../../src/api/extensions.js'
import { ROOT } from '../../helpers/cli.js'
import { waitFor } from '../../helpers/wait.js'
import { errorOf, startSecurityFlock, type SecurityFlock } from '../../security/harness.js'

/**
 * The first-party webhook extension (extensions/webhook), installed from its directory with
 * explicit grants, against a real HTTP server on 127.0.0.1: a failed backup reaches the
 * webhook (after the receiver's 500 is retried), and events published while the extension is
 * stopped arrive after it starts again, in order, none twice (it resumes from its cursor).
 */
interface Received {
  event: string
  seq: number
  data: Record<string, unknown>
}

let f: SecurityFlock
let server: http.Server
const received: Received[] = []
let failNext = 0

const GRANTS = ['events:subscribe:failover.*', 'events:subscribe:switchover.completed', 'events:subscribe:backup.failed', 'api:call:replica.list', 'config:read', 'state:dir']

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      if (failNext > 0) {
        failNext--
        res.writeHead(500).end()
        return
      }
      received.push(JSON.parse(body) as Received)
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  f = await startSecurityFlock({ yaml: `extensions:\n  webhook:\n    url: http://127.0.0.1:${port}/hook\n    lagCheckSeconds: 1\n` })
}, 180_000)
afterAll(async () => {
  await f?.admin.call(extRemove, { name: 'webhook' }).catch(() => undefined)
  await f?.stop()
  server?.close()
})

/** Waits for the n-th "following" line of the extension's log (it is reading /v1/events). */
const following = (n: number) =>
  waitFor(`the webhook to follow the events stream (${n})`, async () => {
    const lines = (await f.admin.call(extLogs, { name: 'webhook', lines: 1000 })).lines.filter((l) => l.includes('"msg":"following"'))
    return lines.length >= n ? true : undefined
  }, 60_000, 100)

const failedBackup = async (db: string) => {
  expect((await errorOf(f.admin.call(backupCreate, { type: 'logical', db }))).code).toMatch(/^E_/)
}

describe('webhook extension', () => {
  it('POSTs a failed backup to the webhook, retrying the receiver\'s 500', async () => {
    const info = await f.admin.call(extInstall, { source: path.join(ROOT, 'extensions/webhook'), grants: GRANTS, enable: true })
    expect(info.grants.sort()).toEqual([...GRANTS].sort())
    // New events only on a first start: wait until it follows the stream.
    await following(1)
    failNext = 1
    await failedBackup('nope1')
    const got = await waitFor('the backup.failed notification', async () => received.find((r) => r.event === 'backup.failed'), 60_000, 100)
    expect(got.data).toMatchObject({ type: 'logical', scheduled: false })
    expect(failNext).toBe(0)
  })

  it('resumes from its cursor after a restart: events published while it was down arrive, in order, none twice', async () => {
    await f.admin.call(extDisable, { name: 'webhook' })
    await failedBackup('nope2')
    await failedBackup('nope3')
    await f.admin.call(extEnable, { name: 'webhook' })
    await following(2)
    await waitFor('three backup.failed notifications', async () => (received.filter((r) => r.event === 'backup.failed').length >= 3 ? true : undefined), 60_000, 100)
    // One more event after the backlog: once it arrives, anything duplicated would have too.
    await failedBackup('nope4')
    await waitFor('the fourth notification', async () => (received.filter((r) => r.event === 'backup.failed').length >= 4 ? true : undefined), 60_000, 100)
    const seqs = received.filter((r) => r.event === 'backup.failed').map((r) => r.seq)
    expect(seqs).toHaveLength(4)
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs)
    expect(new Set(seqs).size).toBe(4)
    expect(received.filter((r) => r.event === 'backup.failed').map((r) => String(r.data.message))).toEqual(['nope1', 'nope2', 'nope3', 'nope4'].map((n) => expect.stringContaining(n)))
  })
})
