import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditRecord } from '../../src/kernel/audit.js'
import { createFlock, type Flock } from '../helpers/flock.js'

/**
 * Issue 10, items 4 and 5, through the built CLI and the real socket: the audit log fails
 * closed, a replaced or deleted audit file is noticed before the next append, and
 * `audit verify` sees a deleted or restarted log.
 */
let f: Flock
const anchorFile = () => path.join(f.stateDir, 'audit.anchor')

function records(file = f.layout.auditLog): AuditRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditRecord)
}

async function databases(): Promise<string[]> {
  return (await f.sql<{ datname: string }>('postgres', 'SELECT datname FROM pg_database')).map((r) => r.datname)
}

async function auditFailures(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${f.metricsPort}/metrics`)).text()
  const m = /^magflock_audit_write_failures_total (\d+)/m.exec(text)
  if (!m) throw new Error('magflock_audit_write_failures_total is not exported')
  return Number(m[1])
}

function chattr(flag: '+i' | '-i', file: string): void {
  execFileSync('chattr', [flag, file])
}

beforeAll(async () => {
  f = await createFlock()
  const up = await f.run(['up', '--json'])
  expect(up.exitCode, up.stdout + up.stderr).toBe(0)
  // One audited call, so the log, head and anchor exist.
  expect((await f.run(['db', 'create', 'first', '--json'])).exitCode).toBe(0)
})

afterAll(async () => {
  try {
    if (f && existsSync(f.layout.auditLog)) chattr('-i', f.layout.auditLog)
  } finally {
    await f?.destroy()
  }
})

describe('the audit log fails closed', () => {
  it('refuses a mutating call with E_AUDIT_UNAVAILABLE when its record cannot be made durable (chattr +i), changes nothing, and counts it', async () => {
    const before = records().length
    const failuresBefore = await auditFailures()
    chattr('+i', f.layout.auditLog)
    let r
    try {
      r = await f.run(['db', 'create', 'refused', '--json'])
    } finally {
      chattr('-i', f.layout.auditLog)
    }
    expect(r.exitCode).toBe(7)
    expect(r.json?.ok).toBe(false)
    if (r.json?.ok !== false) return
    expect(r.json.error.code).toBe('E_AUDIT_UNAVAILABLE')
    expect(r.json.error.message).toContain('db.create')
    expect(r.json.error.message).toMatch(/not writable|immutable|EPERM/)
    expect(r.json.error.hint).toContain('immutable')
    expect(await databases()).not.toContain('refused')
    expect(records()).toHaveLength(before)
    expect(await auditFailures()).toBeGreaterThan(failuresBefore)

    // Writable again: the same call goes through, recorded as intent then outcome.
    const ok = await f.run(['db', 'create', 'refused', '--json'])
    expect(ok.exitCode, ok.stdout).toBe(0)
    const recs = records().filter((x) => x.action === 'db.create')
    const intent = recs.find((x) => x.result === 'intent' && (x.details.input as { name?: string }).name === 'refused')
    expect(intent).toBeDefined()
    const outcome = recs.find((x) => x.result === 'ok' && x.details.intent === intent?.seq)
    expect(outcome?.seq).toBeGreaterThan(intent!.seq)
    expect((await f.run(['audit', 'verify', '--json'])).exitCode).toBe(0)
  })

  it('notices an audit file replaced underneath the kernel (logrotate `create`) and refuses instead of writing to the old inode', async () => {
    const rotated = `${f.layout.auditLog}.1`
    renameSync(f.layout.auditLog, rotated)
    writeFileSync(f.layout.auditLog, '', { mode: 0o600 })
    const r = await f.run(['db', 'create', 'rotated', '--json'])
    expect(r.exitCode).toBe(7)
    expect(r.json?.ok === false && r.json.error.code).toBe('E_AUDIT_UNAVAILABLE')
    expect(r.json?.ok === false && r.json.error.message).toMatch(/replaced|anchor/)
    expect(await databases()).not.toContain('rotated')
    expect(readFileSync(rotated, 'utf8')).not.toContain('rotated')
    expect(readFileSync(f.layout.auditLog, 'utf8')).toBe('')
    // Putting the file back lets the kernel continue the same chain.
    rmSync(f.layout.auditLog)
    renameSync(rotated, f.layout.auditLog)
    expect((await f.run(['db', 'create', 'rotated', '--json'])).exitCode).toBe(0)
    const v = await f.run(['audit', 'verify', '--json'])
    expect(v.exitCode, v.stdout).toBe(0)
  })

  it('a deleted log is reported by audit verify (exit 11) and refused by the next kernel; a restarted log stays visible', async () => {
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    const audited = records().length
    rmSync(f.layout.auditLog)
    rmSync(f.layout.auditHead)
    const v = await f.run<{ problems: Array<{ problem: string }> }>(['audit', 'verify', '--json'])
    expect(v.exitCode).toBe(11)
    expect(v.json?.ok === false && v.json.error.code).toBe('E_AUDIT_TAMPERED')
    expect(JSON.stringify(v.json)).toContain(`anchor outside audit/ records seq ${audited}`)

    // The next kernel does not start a fresh log over the loss.
    expect((await f.run(['up', '--json'])).exitCode).toBe(0)
    const r = await f.run(['db', 'create', 'after_loss', '--json'])
    expect(r.exitCode).toBe(7)
    expect(r.json?.ok === false && r.json.error.message).toContain(`records seq ${audited}`)
    expect(await databases()).not.toContain('after_loss')

    // Deleting the anchor too lets a new log start, but the vault still knows the old one.
    rmSync(anchorFile())
    expect((await f.run(['db', 'create', 'after_loss', '--json'])).exitCode).toBe(0)
    const v2 = await f.run(['audit', 'verify', '--json'])
    expect(v2.exitCode).toBe(11)
    expect(JSON.stringify(v2.json)).toMatch(/not the one the secret store anchored|does not reach/)
  })
})
