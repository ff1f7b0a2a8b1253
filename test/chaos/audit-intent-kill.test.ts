import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditRecord } from '../../src/kernel/audit.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * kill -9 of the kernel in the middle of a mutating call (a migration sleeping in Postgres).
 * The audit log must hold the call's intent, written before the kernel acted, and the CLI
 * must say the kernel was lost (E_KERNEL_LOST, exit 7), not report an internal bug.
 */
let f: Flock

beforeAll(async () => {
  f = await createFlock()
  for (const args of [['up', '--json'], ['db', 'create', 'app', '--json']]) {
    const r = await f.run(args)
    expect(r.exitCode, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0)
  }
})

afterAll(async () => {
  await f?.destroy()
})

function records(): AuditRecord[] {
  return readFileSync(f.layout.auditLog, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditRecord)
}

describe('kernel killed mid-command', () => {
  it('leaves the intent record, and the CLI reports E_KERNEL_LOST (exit 7) with a hint', async () => {
    writeFileSync(path.join(f.projectDir, 'migrations', '00001_slow.sql'), 'CREATE TABLE slow1 (id int);\nSELECT pg_sleep(60);\n')
    const pending = f.run(['db', 'migrate', '--db', 'app', '--json'])
    let done = false
    void pending.finally(() => (done = true))
    await waitFor(
      'the migration to sleep in Postgres',
      async () => {
        if (done) throw new Error(`db migrate ended early: ${JSON.stringify(await pending)}`)
        const rows = await f.sql('postgres', "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")
        return rows.length === 1
      },
      90_000,
    )
    const info = await readKernelInfo(f.layout)
    expect(info).toBeDefined()
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid), 10_000)

    const r = await pending
    expect(r.exitCode, r.stdout + r.stderr).toBe(7)
    expect(r.json?.ok).toBe(false)
    if (r.json?.ok !== false) return
    expect(r.json.error.code).toBe('E_KERNEL_LOST')
    expect(r.json.error.message).toContain('/v1/db/migrate')
    expect(r.json.error.hint).toMatch(/may or may not have taken effect/)
    expect(r.json.error.hint).toContain('magflock up')

    // The intent is durable; no outcome follows it.
    const recs = records()
    const intent = recs.find((x) => x.action === 'db.migrate' && x.result === 'intent')
    expect(intent).toBeDefined()
    expect(intent?.details.input).toMatchObject({ database: 'app' })
    expect(recs.some((x) => x.details.intent === intent?.seq)).toBe(false)

    // The next kernel continues the chain, which still verifies.
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    const v = await f.run(['audit', 'verify', '--json'])
    expect(v.exitCode, v.stdout).toBe(0)
  })
})
