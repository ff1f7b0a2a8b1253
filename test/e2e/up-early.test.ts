import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { createFlock, type Flock } from '../helpers/flock.js'
import type { StatusOutput } from '../../src/api/core.js'

type UpData = StatusOutput & { launched: boolean }

// bin/run.js starts the kernel for `up` before oclif loads (src/cli/early-up.ts): bad input
// must still start nothing, and the launch it starts must be the one the command reports.
describe('magflock up fast path (built CLI)', () => {
  let f: Flock
  beforeAll(async () => {
    f = await createFlock()
    writeFileSync(path.join(f.projectDir, 'magflock.staging.yaml'), 'kernel:\n  logLevel: debug\n')
  })
  afterAll(async () => {
    await f?.destroy()
  })

  it('refuses an unknown flag or a bad env name with no kernel started', async () => {
    const bad = await f.run(['up', '--json', '--bogus'])
    expect(bad.exitCode).toBe(2)
    expect(bad.json).toMatchObject({ ok: false, error: { code: 'E_USAGE' } })
    const env = await f.run(['up', '--json', '--env', 'bad name'])
    expect(env.exitCode).not.toBe(0)
    expect(env.json).toMatchObject({ ok: false, error: { code: 'E_CONFIG_BAD_ENV' } })
    expect(existsSync(f.layout.root), 'state dir').toBe(false)
  })

  it('reports the kernel it launched early, booted with the env and state dir the command resolved', async () => {
    const r = await f.run<UpData>(['up', '--env=staging', '--state-dir', '.magflock', '--json'])
    expect(r.json, r.stderr).toMatchObject({ ok: true, data: { launched: true, kernel: { env: 'staging' } } })
    const again = await f.run<UpData>(['up', '--json'])
    expect(again.json, again.stderr).toMatchObject({ ok: true, data: { launched: false } })
    const down = await f.run(['down', '--json'])
    expect(down.exitCode, down.stderr).toBe(0)
  })
})
