import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  AuditLog,
  AuditUnavailable,
  canonicalJson,
  hashRecord,
  type AuditChainKey,
  type AuditKeyring,
  type AuditPaths,
  type AuditRecord,
} from '../../../src/kernel/audit.js'
import { tempDir } from '../../helpers/tmp.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

function paths(): { auditLog: string; auditHead: string } {
  const tmp = tempDir('mf-audit-')
  cleanups.push(tmp.cleanup)
  const dir = path.join(tmp.dir, 'audit')
  return { auditLog: path.join(dir, 'audit.jsonl'), auditHead: path.join(dir, 'head.json') }
}

async function writeRecords(p: ReturnType<typeof paths>, n: number): Promise<void> {
  const log = new AuditLog(p)
  for (let i = 0; i < n; i++) await log.append({ actor: 'admin', role: 'admin', action: `act.${i}`, target: `t${i}`, result: 'ok', details: { i } })
  await log.close()
}

function lines(p: ReturnType<typeof paths>): string[] {
  return readFileSync(p.auditLog, 'utf8').split('\n').filter((l) => l !== '')
}

function writeLines(p: ReturnType<typeof paths>, ls: string[]): void {
  writeFileSync(p.auditLog, ls.map((l) => l + '\n').join(''))
}

describe('AuditLog', () => {
  it('writes a hash chain that verifies, with 0600 files in a 0700 dir', async () => {
    const p = paths()
    await writeRecords(p, 3)
    const recs = lines(p).map((l) => JSON.parse(l) as AuditRecord)
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3])
    expect(recs[0]?.prevHash).toBeNull()
    expect(recs[1]?.prevHash).toBe(recs[0]?.hash)
    const { hash, ...body } = recs[2] as AuditRecord
    expect(hashRecord(body)).toBe(hash)
    const v = await AuditLog.verify(p)
    expect(v).toEqual({ ok: true, records: 3, headHash: recs[2]?.hash, problems: [] })
    expect(JSON.parse(readFileSync(p.auditHead, 'utf8'))).toEqual({ seq: 3, hash: recs[2]?.hash })
    expect(statSync(p.auditLog).mode & 0o777).toBe(0o600)
    expect(statSync(p.auditHead).mode & 0o777).toBe(0o600)
    expect(statSync(path.dirname(p.auditLog)).mode & 0o777).toBe(0o700)
  })

  it('hashes canonical JSON, independent of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}')
  })

  it('detects an edited line as a hash mismatch', async () => {
    const p = paths()
    await writeRecords(p, 3)
    const ls = lines(p)
    ls[1] = (ls[1] as string).replace('"result":"ok"', '"result":"denied"')
    writeLines(p, ls)
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.problems).toEqual([{ line: 2, problem: expect.stringContaining('hash mismatch') }])
  })

  it('detects an edited line whose hash was recomputed, at the next record', async () => {
    const p = paths()
    await writeRecords(p, 3)
    const recs = lines(p).map((l) => JSON.parse(l) as AuditRecord)
    const { hash: _old, ...body } = recs[1] as AuditRecord
    body.action = 'something.else'
    recs[1] = { ...body, hash: hashRecord(body) }
    writeLines(p, recs.map((r) => JSON.stringify(r)))
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.problems).toEqual([{ line: 3, problem: expect.stringContaining('chain broken') }])
  })

  it('detects a deleted line as a sequence gap', async () => {
    const p = paths()
    await writeRecords(p, 4)
    const ls = lines(p)
    ls.splice(1, 1)
    writeLines(p, ls)
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.records).toBe(3)
    expect(v.problems).toEqual([{ line: 2, problem: expect.stringContaining('sequence gap') }])
  })

  it('detects a deleted first line', async () => {
    const p = paths()
    await writeRecords(p, 2)
    writeLines(p, lines(p).slice(1))
    const v = await AuditLog.verify(p)
    expect(v.problems.map((x) => x.problem)).toEqual([expect.stringContaining('expected seq 1')])
  })

  it('detects a truncated tail through the head file', async () => {
    const p = paths()
    await writeRecords(p, 4)
    writeLines(p, lines(p).slice(0, 2))
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.records).toBe(2)
    expect(v.problems).toEqual([{ line: 3, problem: expect.stringContaining('truncated tail') }])
  })

  it('detects a tail rewritten with a consistent chain but a different last hash', async () => {
    const p = paths()
    await writeRecords(p, 3)
    const recs = lines(p).map((l) => JSON.parse(l) as AuditRecord)
    const { hash: _old, ...body } = recs[2] as AuditRecord
    body.result = 'error'
    recs[2] = { ...body, hash: hashRecord(body) }
    writeLines(p, recs.map((r) => JSON.stringify(r)))
    const v = await AuditLog.verify(p)
    expect(v.problems).toEqual([{ line: 3, problem: expect.stringContaining('head mismatch') }])
  })

  it('detects garbage lines', async () => {
    const p = paths()
    await writeRecords(p, 2)
    const ls = lines(p)
    writeLines(p, [ls[0] as string, 'this is not json', '{"seq":"x"}', ls[1] as string])
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.records).toBe(2)
    expect(v.problems).toEqual([
      { line: 2, problem: expect.stringContaining('garbage') },
      { line: 3, problem: expect.stringContaining('garbage') },
    ])
  })

  it('reports a missing head file when there are records', async () => {
    const p = paths()
    await writeRecords(p, 1)
    writeFileSync(p.auditHead, '') // unreadable
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.problems[0]?.problem).toContain('head file')
  })

  it('verifies an empty (absent) log as ok', async () => {
    const v = await AuditLog.verify(paths())
    expect(v).toEqual({ ok: true, records: 0, headHash: null, problems: [] })
  })

  it('keeps the chain valid under concurrent appends', async () => {
    const p = paths()
    const log = new AuditLog(p)
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append({ actor: `a${i}`, action: 'x', result: 'ok' })))
    await log.close()
    const v = await AuditLog.verify(p)
    expect(v).toMatchObject({ ok: true, records: 50 })
    expect(new Set(lines(p).map((l) => (JSON.parse(l) as AuditRecord).actor)).size).toBe(50)
  })

  it('continues the chain after a restart (a new AuditLog on the same files)', async () => {
    const p = paths()
    await writeRecords(p, 2)
    await writeRecords(p, 2)
    const v = await AuditLog.verify(p)
    expect(v).toMatchObject({ ok: true, records: 4 })
    expect(lines(p).map((l) => (JSON.parse(l) as AuditRecord).seq)).toEqual([1, 2, 3, 4])
  })

  it('keeps a truncation visible after the kernel restarts and appends again', async () => {
    const p = paths()
    await writeRecords(p, 4)
    writeLines(p, lines(p).slice(0, 2))
    await writeRecords(p, 1)
    const v = await AuditLog.verify(p)
    expect(v.ok).toBe(false)
    expect(v.problems.map((x) => x.problem)).toEqual([expect.stringContaining('sequence gap')])
  })

  it('terminates a partial last line left by a crash before continuing', async () => {
    const p = paths()
    await writeRecords(p, 1)
    writeFileSync(p.auditLog, readFileSync(p.auditLog, 'utf8') + '{"seq":2,"at":"2026')
    await writeRecords(p, 1)
    const v = await AuditLog.verify(p)
    // The partial line is reported as garbage; the new record still chains onto seq 1.
    expect(v.problems).toEqual([{ line: 2, problem: expect.stringContaining('garbage') }])
    expect(v.records).toBe(2)
  })

  it('redacts secret-looking keys and values in details', async () => {
    const p = paths()
    const log = new AuditLog(p)
    await log.append({
      actor: 'admin',
      action: 'secrets.set',
      result: 'ok',
      details: {
        password: 'hunter2',
        nested: { apiKey: 'k-123', secretName: 'DB_PASS', tokenId: 'ab12cd34' },
        list: [{ token: 'mf_abc' }],
        url: 'postgres://app:s3cret@127.0.0.1:5432/app',
        note: 'token mf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA leaked',
      },
    })
    await log.close()
    const text = readFileSync(p.auditLog, 'utf8')
    for (const secret of ['hunter2', 'k-123', 'mf_abc', 's3cret', 'mf_AAAA']) expect(text).not.toContain(secret)
    const rec = JSON.parse(text) as AuditRecord
    expect(rec.details).toMatchObject({
      password: '[redacted]',
      nested: { apiKey: '[redacted]', secretName: 'DB_PASS', tokenId: 'ab12cd34' },
      list: [{ token: '[redacted]' }],
      url: 'postgres://app:[redacted]@127.0.0.1:5432/app',
    })
    expect((await AuditLog.verify(p)).ok).toBe(true)
  })

  it('accepts a head one record behind the log (crash between the append and the head update)', async () => {
    const p = paths()
    await writeRecords(p, 3)
    const recs = lines(p).map((l) => JSON.parse(l) as AuditRecord)
    writeFileSync(p.auditHead, JSON.stringify({ seq: 2, hash: recs[1]?.hash }))
    expect(await AuditLog.verify(p)).toMatchObject({ ok: true, records: 3 })
    // ...and the next kernel continues after the last record in the log.
    await writeRecords(p, 1)
    expect(await AuditLog.verify(p)).toMatchObject({ ok: true, records: 4 })
  })

  it('leaves out a final line still being written (no newline yet)', async () => {
    const p = paths()
    await writeRecords(p, 2)
    writeFileSync(p.auditLog, readFileSync(p.auditLog, 'utf8') + '{"seq":3,"at":"20')
    expect(await AuditLog.verify(p)).toMatchObject({ ok: true, records: 2, problems: [] })
  })

  it('verifies consistently while appends are in flight (instance verify is queued)', async () => {
    const p = paths()
    const log = new AuditLog(p)
    const work: Array<Promise<unknown>> = []
    const results: Array<Promise<{ ok: boolean }>> = []
    for (let i = 0; i < 20; i++) {
      work.push(log.append({ actor: 'a', action: `x${i}`, result: 'ok' }))
      if (i % 5 === 4) {
        results.push(log.verify())
        results.push(AuditLog.verify(p))
      }
    }
    await Promise.all(work)
    for (const r of await Promise.all(results)) expect(r.ok).toBe(true)
    await log.close()
  })
})


/** A keyring in memory, as the vault would hold it. */
function memKeyring(): AuditKeyring & { state: AuditChainKey | undefined } {
  const k: AuditKeyring & { state: AuditChainKey | undefined } = {
    state: undefined,
    async load() {
      return k.state === undefined ? undefined : { ...k.state }
    },
    async create(since) {
      k.state = { key: randomBytes(32), since, genesis: null }
      return { ...k.state }
    },
    async setGenesis(c, seq, hash) {
      k.state = { ...c, since: seq, genesis: hash }
    },
  }
  return k
}

function anchored(): Required<AuditPaths> {
  const p = paths()
  return { ...p, auditAnchor: path.join(path.dirname(path.dirname(p.auditLog)), 'audit.anchor') }
}

async function writeKeyed(p: AuditPaths, keyring: AuditKeyring, n: number): Promise<void> {
  const log = new AuditLog(p, { keyring })
  for (let i = 0; i < n; i++) await log.append({ actor: 'admin', action: `act.${i}`, result: 'ok' })
  await log.close()
}

describe('AuditLog: keyed chain, anchor and fail-closed appends', () => {
  it('keys records with HMAC once a keyring is given, keeping older unkeyed records valid (migration)', async () => {
    const p = anchored()
    await writeRecords(p, 2)
    const kr = memKeyring()
    await writeKeyed(p, kr, 2)
    const recs = lines(p).map((l) => JSON.parse(l) as AuditRecord)
    expect(recs.map((r) => r.alg ?? null)).toEqual([null, null, 'hmac-sha256', 'hmac-sha256'])
    expect(kr.state).toMatchObject({ since: 3, genesis: recs[2]?.hash })
    expect(await AuditLog.verify(p, { keyring: kr })).toMatchObject({ ok: true, records: 4, problems: [] })
    // Without the key, keyed records cannot be vouched for.
    expect((await AuditLog.verify(p)).ok).toBe(false)
  })

  it('detects log + head + anchor rewritten consistently without the key', async () => {
    const p = anchored()
    const kr = memKeyring()
    await writeKeyed(p, kr, 3)
    const recs = lines(p).map((l) => JSON.parse(l) as AuditRecord)
    // An attacker recomputes the chain with plain sha256 (or a key of their own) and fixes head and anchor.
    let prev: string | null = null
    const forged = recs.map((r) => {
      const { hash: _h, alg: _a, ...body } = r
      const b = { ...body, result: 'error' as const, prevHash: prev }
      const hash = hashRecord(b)
      prev = hash
      return { ...b, hash }
    })
    writeLines(p, forged.map((r) => JSON.stringify(r)))
    const head = JSON.stringify({ seq: 3, hash: prev })
    writeFileSync(p.auditHead, head)
    writeFileSync(p.auditAnchor, head)
    const v = await AuditLog.verify(p, { keyring: kr })
    expect(v.ok).toBe(false)
    expect(v.problems.map((x) => x.problem).join('\n')).toMatch(/unkeyed record at seq 1 after the chain became keyed|not the one the secret store anchored/)
    // With a key of their own the HMACs do not match ours.
    const other = randomBytes(32)
    prev = null
    const forged2 = recs.map((r) => {
      const { hash: _h, ...body } = r
      const b = { ...body, prevHash: prev }
      const hash = hashRecord(b, other)
      prev = hash
      return { ...b, hash }
    })
    writeLines(p, forged2.map((r) => JSON.stringify(r)))
    const v2 = await AuditLog.verify(p, { keyring: kr })
    expect(v2.problems.map((x) => x.problem)).toContain('hash mismatch at seq 1: the record was edited (its HMAC does not match the chain key)')
  })

  it('verify reports a deleted log and head through the anchor outside audit/', async () => {
    const p = anchored()
    const kr = memKeyring()
    await writeKeyed(p, kr, 2)
    rmSync(path.dirname(p.auditLog), { recursive: true })
    const v = await AuditLog.verify(p, { keyring: kr })
    expect(v.ok).toBe(false)
    expect(v.problems.map((x) => x.problem).join('\n')).toContain('the audit log is missing or empty but the anchor outside audit/ records seq 2')
  })

  it('verify reports a restarted log (audit/ and anchor deleted, kernel wrote a new seq 1) through the keyring genesis', async () => {
    const p = anchored()
    const kr = memKeyring()
    await writeKeyed(p, kr, 3)
    rmSync(path.dirname(p.auditLog), { recursive: true })
    rmSync(p.auditAnchor)
    await writeKeyed(p, kr, 1)
    const v = await AuditLog.verify(p, { keyring: kr })
    expect(v.ok).toBe(false)
    expect(v.problems.map((x) => x.problem).join('\n')).toContain('is not the one the secret store anchored')
    // Deleting everything but the keyring: the keyring alone still says a log existed.
    rmSync(path.dirname(p.auditLog), { recursive: true })
    rmSync(p.auditAnchor)
    const v2 = await AuditLog.verify(p, { keyring: kr })
    expect(v2.problems.map((x) => x.problem).join('\n')).toContain('records a keyed log from seq 1 that this log does not reach')
  })

  it('refuses to continue when the anchor is ahead of the log (audit/ deleted), and counts the failure', async () => {
    const p = anchored()
    const kr = memKeyring()
    await writeKeyed(p, kr, 2)
    rmSync(path.dirname(p.auditLog), { recursive: true })
    const failures: string[] = []
    const log = new AuditLog(p, { keyring: kr, onWriteFailure: (e) => failures.push(e.reason) })
    const err = await log.append({ actor: 'a', action: 'x', result: 'ok' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AuditUnavailable)
    expect((err as AuditUnavailable).reason).toMatch(/ends at seq 0 but .*audit\.anchor records seq 2/)
    expect(failures).toHaveLength(1)
    await log.close()
  })

  it('refuses to continue on a log replaced by another one of the same length', async () => {
    const p = anchored()
    const kr = memKeyring()
    await writeKeyed(p, kr, 2)
    const other = anchored()
    await writeKeyed(other, memKeyring(), 2)
    writeFileSync(p.auditLog, readFileSync(other.auditLog))
    writeFileSync(p.auditHead, readFileSync(other.auditHead))
    const log = new AuditLog(p, { keyring: kr })
    const err = await log.append({ actor: 'a', action: 'x', result: 'ok' }).catch((e: unknown) => e)
    expect((err as AuditUnavailable).reason).toMatch(/last record \(seq 2\) is not the one .* records: audit.jsonl was replaced/)
    await log.close()
  })

  it('refuses an append once the open log file was deleted or replaced (never writes to a dead inode)', async () => {
    for (const how of ['rm', 'mv'] as const) {
      const p = anchored()
      const log = new AuditLog(p, { keyring: memKeyring() })
      await log.append({ actor: 'a', action: 'first', result: 'ok' })
      if (how === 'rm') rmSync(p.auditLog)
      else {
        renameSync(p.auditLog, `${p.auditLog}.1`)
        writeFileSync(p.auditLog, '') // logrotate's `create`
      }
      const err = await log.append({ actor: 'a', action: 'second', result: 'ok' }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(AuditUnavailable)
      expect((err as AuditUnavailable).reason).toMatch(how === 'rm' ? /was deleted/ : /was replaced/)
      // Reopening finds the anchor ahead of the (new, empty) log and keeps refusing.
      const again = await log.append({ actor: 'a', action: 'third', result: 'ok' }).catch((e: unknown) => e)
      expect((again as AuditUnavailable).reason).toMatch(/anchor records seq 1/)
      await log.close()
      const moved = how === 'mv' ? readFileSync(`${p.auditLog}.1`, 'utf8') : ''
      expect(moved).not.toContain('second')
    }
  })
})
