import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdFlockStore } from '../../src/cluster/etcd-store.js'
import type { NodeListResult } from '../../src/cluster/node-list.js'
import { cli } from '../helpers/cli.js'
import { startTestEtcd, type TestEtcd } from '../helpers/etcd.js'
import { tempDir } from '../helpers/tmp.js'

let etcd: TestEtcd
const tmp = tempDir()

beforeAll(async () => {
  etcd = await startTestEtcd()
  const s = new EtcdFlockStore({ endpoints: [etcd.endpoint], flock: 'prod' })
  await s.updateTopology(() => ({
    nodes: { a: { name: 'a', address: '10.0.0.1', joinedAt: 'x' }, b: { name: 'b', address: '10.0.0.2', joinedAt: 'x' } },
    instances: { a_1: { name: 'a_1', node: 'a', role: 'primary', port: 5432, sync: true }, b_1: { name: 'b_1', node: 'b', role: 'replica', port: 5432, sync: true } },
  }))
  await s.putMember({ node: 'a', instance: 'a_1', role: 'primary', lsn: '0/5000000', at: Date.now() })
  await s.putMember({ node: 'b', instance: 'b_1', role: 'replica', lsn: '0/4FFFF00', at: Date.now() })
  await s.leadership('a').acquire(30_000)
  await s.close()
}, 60_000)
afterAll(async () => {
  await etcd?.stop()
  tmp.cleanup()
})

describe('magflock node list', () => {
  it('shows nodes, roles, lag and the lease holder from etcd, in --json too', async () => {
    const r = await cli<NodeListResult>(['node', 'list', '--etcd', etcd.endpoint, '--flock', 'prod', '--json'], { cwd: tmp.dir })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json?.ok).toBe(true)
    const data = (r.json as { data: NodeListResult }).data
    expect(data.leader).toBe('a')
    expect(data.nodes.map((n) => [n.name, n.role, n.lagBytes])).toEqual([['a', 'primary', null], ['b', 'replica', 256]])
    const human = await cli(['node', 'list', '--etcd', etcd.endpoint, '--flock', 'prod'], { cwd: tmp.dir })
    expect(human.stdout).toMatch(/^a \*\s+10\.0\.0\.1/m)
    expect(human.stdout).toContain('leader (lease holder): a')
  })

  it('refuses a bad --etcd list with E_ETCD_ENDPOINT_INVALID (exit 2)', async () => {
    const r = await cli(['node', 'list', '--etcd', 'etcd1:2379', '--json'], { cwd: tmp.dir })
    expect(r.exitCode).toBe(2)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_ETCD_ENDPOINT_INVALID' } })
  })

  it('fails with E_FLOCK_STORE_UNAVAILABLE (exit 7) when no etcd answers', async () => {
    const r = await cli(['node', 'list', '--etcd', 'http://127.0.0.1:9', '--json'], { cwd: tmp.dir })
    expect(r.exitCode).toBe(7)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_FLOCK_STORE_UNAVAILABLE' } })
  })
})
