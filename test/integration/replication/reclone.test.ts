import { existsSync, readdirSync } from 'node:fs'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReplica, promote, recloneBeside, rejoin } from '../../../src/replication/actions.js'
import { clientConfig, type PgNode } from '../../../src/replication/pg.js'
import { primaryStatus } from '../../../src/replication/status.js'
import { q, startFlock, waitFor, type Flock } from './harness.js'

/**
 * A re-clone replaces a node's data directory only with a complete clone: a clone that fails
 * (here: pg_basebackup killed by its deadline, as when the new primary dies or the kernel's
 * deadline hits) leaves the old data directory as it was, with its diverged rows.
 */
describe('re-clone keeps the old data directory until a clone is complete', () => {
  let f: Flock
  let r1: PgNode

  beforeAll(async () => {
    f = await startFlock()
    await q(f, f.primary, 'create table w(seq int primary key)')
    await q(f, f.primary, 'insert into w values (1)')
    r1 = await f.newNode('r1')
    await createReplica(f.env, f.primary, r1, { noSync: true })
    await waitFor('r1 has row 1', async () => (await q<{ n: number }>(f, r1, 'select count(*)::int as n from w'))[0]?.n === 1)
    await promote(f.env, r1)
    // p0 diverges: a write r1 never sees.
    await q(f, f.primary, 'insert into w values (2)')
    await f.env.lifecycle.stop(f.primary, 'fast')
  })
  afterAll(async () => {
    await f?.cleanup()
  })

  const siblings = (n: PgNode) => readdirSync(path.dirname(n.dataDir)).filter((e) => e.startsWith(path.basename(n.dataDir) + '.'))

  it('a clone that fails leaves the old data directory whole and no partial clone behind', async () => {
    const controlBefore = await fsp.readFile(path.join(f.primary.dataDir, 'global', 'pg_control'))
    // "Not stopped cleanly at" an LSN it is not at: pg_rewind is skipped, the re-clone path runs;
    // a 1 ms deadline kills pg_basebackup before it is done.
    await expect(rejoin(f.env, f.primary, r1, { cleanlyStoppedAt: '0/1', timeoutMs: 1, noSync: true })).rejects.toThrow()
    expect(await fsp.readFile(path.join(f.primary.dataDir, 'global', 'pg_control'))).toEqual(controlBefore)
    expect(existsSync(path.join(f.primary.dataDir, 'PG_VERSION'))).toBe(true)
    expect(siblings(f.primary)).toEqual([])
    // The diverged write is still in it: start it alone and look.
    await fsp.rm(path.join(f.primary.dataDir, 'standby.signal'), { force: true })
    await f.env.lifecycle.start(f.primary)
    expect((await q<{ seq: number }>(f, f.primary, 'select seq from w order by seq')).map((r) => r.seq)).toEqual([1, 2])
    await f.env.lifecycle.stop(f.primary, 'fast')
  })

  it('a complete clone replaces it and the node streams from the new primary', async () => {
    const r = await rejoin(f.env, f.primary, r1, { cleanlyStoppedAt: '0/1', noSync: true })
    expect(r.method).toBe('reclone')
    expect(siblings(f.primary)).toEqual([])
    await waitFor('p0 streams from r1', async () => (await primaryStatus(clientConfig(f.env, r1))).senders.some((s) => s.name === 'p0' && s.state === 'streaming'))
    expect((await q<{ seq: number }>(f, f.primary, 'select seq from w order by seq')).map((r) => r.seq)).toEqual([1])
  })

  it('finishes a swap a crash interrupted between its two renames (old data back in place first)', async () => {
    const dir = await fsp.mkdtemp(path.join(path.dirname(f.primary.dataDir), 'swap-'))
    const node = { ...f.primary, dataDir: path.join(dir, 'data') }
    await fsp.mkdir(`${node.dataDir}.diverged`)
    await fsp.writeFile(path.join(`${node.dataDir}.diverged`, 'old'), 'x')
    await fsp.mkdir(`${node.dataDir}.reclone`)
    await expect(recloneBeside(f.env, node, async () => { throw new Error('clone failed') })).rejects.toThrow('clone failed')
    expect(readdirSync(dir)).toEqual(['data'])
    expect(existsSync(path.join(node.dataDir, 'old'))).toBe(true)
    await recloneBeside(f.env, node, async (into) => {
      await fsp.mkdir(into)
      await fsp.writeFile(path.join(into, 'new'), 'y')
    })
    expect(readdirSync(dir)).toEqual(['data'])
    expect(readdirSync(node.dataDir)).toEqual(['new'])
    await fsp.rm(dir, { recursive: true, force: true })
  })
})
