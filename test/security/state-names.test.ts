import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startKernel } from '../../src/daemon/boot.js'
import { FlockInstances } from '../../src/daemon/instances.js'
import { stateLayout } from '../../src/platform/paths.js'
import { freePort } from '../../src/platform/ports.js'
import { ReplicationStateFile } from '../../src/replication/state.js'
import { MigrationDirRegistry } from '../../src/migrations/registry.js'
import { defaultConfig } from '../../src/config/schema.js'
import { errorOf } from './harness.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * Issue 10, item 18: names read back from state files are input like any other. An instance
 * named `../../etc` in topology.json resolved outside the state dir; now it is
 * E_CORRUPT_STATE naming the file, and no path is ever built from such a name.
 */
process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 12).toString('base64')

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

function state(): { dir: string; stateDir: string } {
  const t = tempDir('mf-names-')
  cleanups.push(t.cleanup)
  const stateDir = path.join(t.dir, '.magflock')
  mkdirSync(stateDir, { recursive: true })
  return { dir: t.dir, stateDir }
}

const noSecrets = { get: async () => undefined, set: async () => {}, delete: async () => false } as never

describe('instance names from disk (item 18)', () => {
  it('topology.json naming "../../etc" is E_CORRUPT_STATE naming the file', async () => {
    const { stateDir } = state()
    const file = path.join(stateDir, 'topology.json')
    writeFileSync(file, JSON.stringify({ instances: [{ name: '../../etc', role: 'primary', port: 5432 }] }))
    const reg = new FlockInstances(stateLayout(stateDir), noSecrets, defaultConfig)
    const err = await errorOf(reg.readTopology())
    expect(err.code).toBe('E_CORRUPT_STATE')
    expect(err.message).toContain(file)
    expect(err.message).toContain('"../../etc"')
    for (const bad of ['Primary', 'a/b', '..', 'x'.repeat(41), '']) {
      writeFileSync(file, JSON.stringify({ instances: [{ name: bad, role: 'replica', port: 5433 }] }))
      expect((await errorOf(reg.readTopology())).code, bad).toBe('E_CORRUPT_STATE')
    }
    writeFileSync(file, JSON.stringify({ instances: [{ name: 'primary', role: 'primary', port: 5432 }, { name: 'primary', role: 'replica', port: 5433 }] }))
    expect((await errorOf(reg.readTopology())).message).toContain('listed twice')
  })

  it('a kernel refuses to boot on it and creates nothing outside the state dir', async () => {
    const { dir, stateDir } = state()
    writeFileSync(path.join(dir, 'magflock.yaml'), `postgres:\n  port: ${await freePort()}\nmetrics:\n  port: ${await freePort()}\n`)
    const file = path.join(stateDir, 'topology.json')
    writeFileSync(file, JSON.stringify({ instances: [{ name: '../../etc', role: 'primary', port: 5432 }] }))
    const err = await errorOf(startKernel({ stateDir, projectDir: dir }))
    expect(err.code).toBe('E_CORRUPT_STATE')
    expect(err.message).toContain(file)
    // <state>/instances/../../etc would be <project>/etc.
    expect(existsSync(path.join(dir, 'etc'))).toBe(false)
  })

  it('replication.json and migrations.json names are checked the same way', async () => {
    const { stateDir } = state()
    const rfile = path.join(stateDir, 'replication.json')
    writeFileSync(rfile, JSON.stringify({ replicas: { '../../etc': { sync: false, addedAt: 'x' } } }))
    const r = await errorOf(new ReplicationStateFile(rfile).read())
    expect(r.code).toBe('E_CORRUPT_STATE')
    expect(r.message).toContain(rfile)
    writeFileSync(rfile, JSON.stringify({ inProgress: { op: 'failover', from: 'primary', to: '../x', startedAt: 'x' } }))
    expect((await errorOf(new ReplicationStateFile(rfile).read())).code).toBe('E_CORRUPT_STATE')
    const mfile = path.join(stateDir, 'migrations.json')
    writeFileSync(mfile, JSON.stringify({ version: 1, databases: { app: { dir: 'relative/dir', registeredBy: 'a', registeredAt: 'x' } } }))
    expect((await errorOf(new MigrationDirRegistry(mfile).get('app'))).code).toBe('E_CORRUPT_STATE')
  })

  it('no path is built from an invalid name, whatever its source', () => {
    const layout = stateLayout('/nonexistent/state')
    expect(() => layout.dataDir('../../etc')).toThrow(/not valid/)
    expect(() => layout.instanceDir('a/b')).toThrow(/not valid/)
    expect(layout.dataDir('r1')).toBe('/nonexistent/state/instances/r1/data')
  })
})
