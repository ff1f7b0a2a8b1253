import { afterEach, describe, expect, it } from 'vitest'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { INSTANCE_NAME_RE } from '../../../src/platform/paths.js'
import { EARLY_INSTANCE_NAME_RE, LAUNCH_RECIPE_FILE, discardEarlyPostmasters, sameRunAs, startEarlyPostmasters } from '../../../src/postgres/early-start.js'
import { tempDir } from '../../helpers/tmp.js'

// The first stage's decisions that need no Postgres (the spawn itself: test/e2e/up-first-stage.test.ts).
describe('kernel first stage (early-start)', () => {
  const dirs: Array<{ cleanup(): void }> = []
  afterEach(async () => {
    await discardEarlyPostmasters()
    for (const d of dirs.splice(0)) d.cleanup()
  })

  const stateDir = (recipe: unknown, topology: unknown) => {
    const t = tempDir('mf-early-')
    dirs.push(t)
    if (recipe !== undefined) writeFileSync(path.join(t.dir, LAUNCH_RECIPE_FILE), JSON.stringify(recipe), { mode: 0o600 })
    if (topology !== undefined) writeFileSync(path.join(t.dir, 'topology.json'), JSON.stringify(topology))
    return t.dir
  }
  // A "postgres" that must never run: every case below has to refuse before spawning it.
  const recipe = { postgres: '/bin/false', runAs: process.getuid?.() === 0 ? { name: 'postgres', uid: 101, gid: 104, home: '/' } : null }

  it('checks instance names by the same rule as the state layout', () => {
    expect(EARLY_INSTANCE_NAME_RE.source).toBe(INSTANCE_NAME_RE.source)
    expect(EARLY_INSTANCE_NAME_RE.flags).toBe(INSTANCE_NAME_RE.flags)
  })

  it('spawns nothing without a recipe, without a topology, or for members that do not qualify', () => {
    expect(startEarlyPostmasters(stateDir(undefined, { instances: [{ name: 'pg1', role: 'primary' }] }))).toEqual([])
    expect(startEarlyPostmasters(stateDir(recipe, undefined))).toEqual([])
    const dir = stateDir(recipe, {
      instances: [
        { name: '../../etc', role: 'primary' },
        { name: 'pg1', role: 'fenced' },
        { name: 'pg2', role: 'replica' }, // no data dir
        { name: 'pg3', role: 'primary' }, // postmaster.pid present
        { name: 'pg4', role: 'replica' }, // fence marker
        { name: 'pg5', role: 'primary' }, // interrupted restore
      ],
    })
    for (const n of ['pg1', 'pg3', 'pg4', 'pg5']) {
      mkdirSync(path.join(dir, 'instances', n, 'data'), { recursive: true })
      writeFileSync(path.join(dir, 'instances', n, 'data', 'PG_VERSION'), '15\n')
    }
    writeFileSync(path.join(dir, 'instances/pg3/data/postmaster.pid'), '1\n')
    writeFileSync(path.join(dir, 'instances/pg4/fence.json'), '{}')
    writeFileSync(path.join(dir, 'instances/pg5/restore-in-progress.json'), '{}')
    expect(startEarlyPostmasters(dir)).toEqual([])
  })

  it('spawns nothing while kernel.lock exists (a live kernel, or a stale lock the boot judges), or with a recipe others may write', () => {
    const top = { instances: [{ name: 'pg1', role: 'primary' }] }
    const make = () => {
      const dir = stateDir(recipe, top)
      mkdirSync(path.join(dir, 'instances/pg1/data'), { recursive: true })
      writeFileSync(path.join(dir, 'instances/pg1/data/PG_VERSION'), '15\n')
      return dir
    }
    const locked = make()
    writeFileSync(path.join(locked, 'kernel.lock'), String(process.ppid))
    expect(startEarlyPostmasters(locked)).toEqual([])
    const loose = make()
    writeFileSync(path.join(loose, LAUNCH_RECIPE_FILE), JSON.stringify(recipe), { mode: 0o666 })
    chmodSync(path.join(loose, LAUNCH_RECIPE_FILE), 0o666)
    expect(startEarlyPostmasters(loose)).toEqual([])
    // A flock that ran with ssl: the boot rewrites the certificate copies, so no early start.
    writeFileSync(path.join(loose, LAUNCH_RECIPE_FILE), JSON.stringify({ ...recipe, ssl: true }), { mode: 0o600 })
    chmodSync(path.join(loose, LAUNCH_RECIPE_FILE), 0o600)
    expect(startEarlyPostmasters(loose)).toEqual([])
    // The same state dir with a trusted recipe and no lock does spawn (the control case).
    writeFileSync(path.join(loose, LAUNCH_RECIPE_FILE), JSON.stringify(recipe), { mode: 0o600 })
    expect(startEarlyPostmasters(loose)).toEqual(['pg1'])
    // It took the kernel lock first, as the boot would (which then keeps it: same pid).
    expect(readFileSync(path.join(loose, 'kernel.lock'), 'utf8')).toBe(String(process.pid))
  })

  it('compares OS users by uid, gid, name and home', () => {
    const u = { name: 'postgres', uid: 1, gid: 2, home: '/h' }
    expect(sameRunAs(null, undefined)).toBe(true)
    expect(sameRunAs(u, { ...u })).toBe(true)
    expect(sameRunAs(u, undefined)).toBe(false)
    expect(sameRunAs(null, u)).toBe(false)
    expect(sameRunAs(u, { ...u, home: '/x' })).toBe(false)
    expect(sameRunAs(u, { ...u, uid: 3 })).toBe(false)
  })
})
