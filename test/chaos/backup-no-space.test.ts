import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'

/**
 * Issue 10, item 15: a logical backup that fills its filesystem removes what it wrote and says
 * E_BACKUP_NO_SPACE with the path and the space needed. A real, small filesystem: a 1 MiB tmpfs
 * mounted (as root) over the backups directory, unmounted afterwards. Needs the built CLI.
 */
describe('chaos: a backup that runs out of disk space', () => {
  let f: Flock
  let mounted = false
  beforeAll(async () => {
    f = await createFlock()
    const r = await f.run(['up', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    await f.sql('postgres', 'create database app')
    await f.sql('app', 'create table t as select g, md5(g::text) || md5(random()::text) as pad from generate_series(1, 100000) g')
    mkdirSync(f.layout.backupsDir, { recursive: true })
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', f.layout.backupsDir])
    mounted = true
  })
  afterAll(async () => {
    if (mounted) execFileSync('umount', [f.layout.backupsDir])
    await f?.destroy()
  })

  it('fails with E_BACKUP_NO_SPACE naming the path and the space needed, and leaves nothing behind', async () => {
    const r = await f.run(['backup', 'create', '--type', 'logical', '--db', 'app', '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(5)
    expect(r.json?.ok).toBe(false)
    if (r.json?.ok !== false) return
    expect(r.json.error.code).toBe('E_BACKUP_NO_SPACE')
    expect(r.json.error.message).toContain(f.layout.backupsDir)
    const d = r.json.error.details as { path: string; neededBytes: number; freeBytes: number }
    expect(d.path).toBe(f.layout.backupsDir)
    expect(d.neededBytes).toBeGreaterThan(1024 * 1024)
    expect(d.freeBytes).toBeGreaterThan(1024 * 1024 - 64 * 1024) // the partial files are gone again
    expect(readdirSync(f.layout.backupsDir)).toEqual([])
    const l = await f.run<{ backups: unknown[]; incomplete: unknown[] }>(['backup', 'list', '--json'])
    expect(l.json?.ok && l.json.data).toMatchObject({ backups: [], incomplete: [] })
  })
})
