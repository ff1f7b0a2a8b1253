import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { clusterSettingsFile, leaseConflict, parseNodeFlags, readClusterSettings, saveClusterSettings, withNodeListen } from '../../../src/cluster/node-settings.js'
import { loadConfig } from '../../../src/config/load.js'

const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-node-settings-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('node settings (cluster.json): the flags of `up --etcd` and `node join`', () => {
  it('takes all three flags or none, and validates each', () => {
    expect(parseNodeFlags({})).toBeUndefined()
    expect(parseNodeFlags({ etcd: 'http://10.0.0.1:2379,https://10.0.0.2:2379', node: 'a', listen: '10.0.0.1' })).toEqual({ etcd: ['http://10.0.0.1:2379', 'https://10.0.0.2:2379'], node: 'a', listen: '10.0.0.1' })
    expect(code(() => parseNodeFlags({ etcd: 'http://10.0.0.1:2379', node: 'a' }))).toBe('E_NODE_FLAGS_INCOMPLETE')
    expect(code(() => parseNodeFlags({ listen: '10.0.0.1' }))).toBe('E_NODE_FLAGS_INCOMPLETE')
    expect(code(() => parseNodeFlags({ etcd: '10.0.0.1:2379', node: 'a', listen: '10.0.0.1' }))).toBe('E_ETCD_ENDPOINT_INVALID')
    for (const node of ['A', '1a', 'a-b', 'a'.repeat(41), '']) expect(code(() => parseNodeFlags({ etcd: 'http://e:2379', node, listen: '10.0.0.1' })), node).toBe('E_NODE_NAME_INVALID')
    for (const listen of ['127.0.0.1', '127.0.0.2', '0.0.0.0', '::', '::1', 'db1', '10.0.0.256', '']) expect(code(() => parseNodeFlags({ etcd: 'http://e:2379', node: 'a', listen })), listen).toBe('E_NODE_LISTEN_INVALID')
    expect(parseNodeFlags({ etcd: 'http://e:2379', node: 'a', listen: 'fd00::1' })?.listen).toBe('fd00::1')
    expect(parseNodeFlags({ etcd: 'http://e:2379', node: 'a', listen: '10.0.0.1', ttl: 10 })?.ttlMs).toBe(10_000)
    expect(code(() => parseNodeFlags({ ttl: 10 }))).toBe('E_NODE_FLAGS_INCOMPLETE')
  })

  it('records them once; the same again is fine, another identity is refused and nothing changes', async () => {
    const a = { etcd: ['http://10.0.0.1:2379'], node: 'a', listen: '10.0.0.1' }
    const s = await saveClusterSettings(dir, a, 'primary')
    expect(s).toMatchObject({ ...a, bootstrap: 'primary', mode: 'sync', ttlMs: 2500, marginMs: 1000 })
    const before = readFileSync(clusterSettingsFile(dir), 'utf8')
    expect(await saveClusterSettings(dir, a, 'replica')).toEqual(s)
    await expect(saveClusterSettings(dir, { ...a, node: 'b' }, 'primary')).rejects.toMatchObject({ code: 'E_NODE_SETTINGS_CONFLICT' })
    await expect(saveClusterSettings(dir, { ...a, listen: '10.0.0.9' }, 'primary')).rejects.toMatchObject({ code: 'E_NODE_SETTINGS_CONFLICT' })
    await expect(saveClusterSettings(dir, { ...a, etcd: ['http://10.0.0.2:2379'] }, 'primary')).rejects.toMatchObject({ code: 'E_NODE_SETTINGS_CONFLICT' })
    await expect(saveClusterSettings(dir, { ...a, ttlMs: 10_000 }, 'primary')).rejects.toMatchObject({ code: 'E_NODE_SETTINGS_CONFLICT' })
    expect(readFileSync(clusterSettingsFile(dir), 'utf8')).toBe(before)
    expect(await readClusterSettings(dir)).toEqual(s)
  })

  it('a node kernel also listens on its address; a one-host flock keeps its config', async () => {
    const { config } = await loadConfig({ cwd: dir, environ: {} })
    expect(withNodeListen(config, undefined)).toBe(config)
    const s = await readClusterSettings(dir)
    expect(withNodeListen(config, s).postgres.listen).toEqual([...config.postgres.listen, '10.0.0.1'])
  })
})

describe('leaseConflict: lease settings that are safe side by side', () => {
  const n = (node: string, ttlMs: number, marginMs = 1000) => ({ node, ttlMs, marginMs })
  it('accepts equal leases, and the former default beside the new one (2.5 s ≥ 3 s − 1 s)', () => {
    expect(leaseConflict(n('c', 2500), [n('a', 2500), n('b', 2500)])).toBeUndefined()
    expect(leaseConflict(n('c', 2500), [n('a', 3000)])).toBeUndefined()
    expect(leaseConflict(n('c', 3000), [n('a', 2500)])).toBeUndefined()
    expect(leaseConflict(n('c', 10_000), [n('a', 11_000)])).toBeUndefined()
  })
  it('refuses a lease shorter than another lease minus its margin, either way round; itself is no other', () => {
    // c would take the key 2.5 s after a's last heartbeat, while a writes until 9 s after it.
    expect(leaseConflict(n('c', 2500), [n('a', 2500), n('b', 10_000)])).toEqual(n('b', 10_000))
    // a (2.5 s) would take c's key while c (10 s) still writes.
    expect(leaseConflict(n('c', 10_000), [n('a', 2500)])).toEqual(n('a', 2500))
    expect(leaseConflict(n('c', 3000, 200), [n('a', 2500, 1000)])).toEqual(n('a', 2500, 1000))
    expect(leaseConflict(n('c', 2500), [n('c', 10_000)])).toBeUndefined()
  })
})

