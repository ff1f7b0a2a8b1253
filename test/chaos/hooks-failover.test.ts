import net from 'node:net'
import path from 'node:path'
import { writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { status } from '../../src/api/core.js'
import { failover, replicaAdd } from '../../src/api/replication.js'
import { KernelClient } from '../../src/client/index.js'
import { startKernel, type RunningKernel } from '../../src/daemon/boot.js'
import { stateLayout } from '../../src/platform/paths.js'
import { freePort } from '../../src/platform/ports.js'
import { rawRequest } from '../security/harness.js'
import { tempDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 9).toString('base64')

/**
 * A hung extension never holds up a failover: it registered observe hooks on failover.after
 * and replication.role_changed (the only effect those points allow), then stopped reading its
 * event stream and never answers. The failover completes, the replica is promoted, and the
 * invocations are in the journal for when (if ever) the extension comes back.
 */
describe('failover with a hung extension hook (chaos)', () => {
  let k: RunningKernel
  let t: { dir: string; cleanup(): void }
  let client: KernelClient
  let hung: net.Socket | undefined

  beforeAll(async () => {
    t = tempDir('mf-hookfo-')
    writeFileSync(
      path.join(t.dir, 'magflock.yaml'),
      `postgres:\n  port: ${await freePort()}\n  settings:\n    fsync: "off"\n    wal_log_hints: "on"\nmetrics:\n  port: ${await freePort()}\nreplication:\n  basePort: ${await freePort()}\n`,
    )
    k = await startKernel({ stateDir: path.join(t.dir, '.magflock'), projectDir: t.dir })
    client = new KernelClient(stateLayout(path.join(t.dir, '.magflock')))
  }, 180_000)
  afterAll(async () => {
    hung?.destroy()
    await k?.shutdown({ keepPostgres: false, reason: 'test' })
    t?.cleanup()
  })

  it('the failover completes while the hook never answers', { timeout: 180_000 }, async () => {
    await client.call(replicaAdd, { name: 'r1', sync: false })
    const { token } = await k.tokens.create({
      role: 'extension',
      name: 'ext-hang',
      extension: 'hang',
      grants: ['hooks:failover.after:observe', 'hooks:replication.role_changed:observe', 'hooks:failover.after:veto'],
    })
    const socket = client.socketPath
    for (const point of ['failover.after', 'replication.role_changed']) {
      const r = await rawRequest(socket, token, { method: 'POST', path: '/v1/hooks', body: { point, effect: 'observe', timeoutMs: 60_000 } })
      expect(r.status, r.text).toBe(200)
    }
    // Even with a veto grant, the failover path cannot be made to wait.
    const veto = await rawRequest(socket, token, { method: 'POST', path: '/v1/hooks', body: { point: 'failover.after', effect: 'veto', timeoutMs: 60_000 } })
    expect(veto.body.error).toMatchObject({ code: 'E_HOOK_OBSERVE_ONLY' })
    // The extension follows its stream, then hangs: it never reads again and never answers.
    const before = k.services.journal.subscribers
    hung = net.connect(socket)
    await new Promise<void>((r) => hung!.once('connect', () => r()))
    hung.write(`GET /v1/events?follow=1 HTTP/1.1\r\nhost: magflock\r\nauthorization: Bearer ${token}\r\n\r\n`)
    hung.pause()
    await waitFor('the extension follows', async () => k.services.journal.subscribers > before, 10_000)

    const from = (await client.call(status, {})).instances.find((i) => i.role === 'primary')!.name
    const res = await client.call(failover, { to: 'r1', force: true })
    expect(res.to).toBe('r1')
    const after = await client.call(status, {})
    expect(after.instances.find((i) => i.name === 'r1')?.role).toBe('primary')

    // The hook invocations were published after the fact, never answered, never awaited.
    const invoked = await waitFor(
      'hook invocations in the journal',
      async () => {
        const inv = [...k.services.journal.read(0)].flat().filter((e) => e.type === 'hook.invoke')
        return inv.length >= 3 ? inv : undefined
      },
      10_000,
    )
    const points = invoked.map((e) => (e.data as { point: string; context: Record<string, unknown> }).point)
    expect(points).toContain('failover.after')
    expect(invoked.map((e) => (e.data as { context: Record<string, unknown> }).context)).toContainEqual(expect.objectContaining({ instance: 'r1', from: 'replica', to: 'primary' }))
    expect(invoked.find((e) => (e.data as { point: string }).point === 'failover.after')!.data).toMatchObject({ context: { from, to: 'r1' } })
    expect([...k.services.journal.read(0)].flat().some((e) => e.type === 'hook.timeout')).toBe(false)
  })
})
