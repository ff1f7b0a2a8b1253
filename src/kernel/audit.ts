import { createHash } from 'node:crypto'
import { createReadStream, promises as fsp } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fsyncDir } from '../platform/fs.js'
import { redactDetails } from '../telemetry/redact.js'
import { redactor } from '../secrets/redact.js'
import type { AuditRecordInput, AuditWriter } from './component.js'

/**
 * The tamper-evident audit log: one JSON line per record, each carrying the hash of the one
 * before it, so editing, deleting or reordering a record breaks the chain where it happened.
 *
 *   hash = sha256(canonical JSON of the record without `hash`, prevHash included)
 *
 * Canonical JSON sorts object keys recursively, so the hash does not depend on key order.
 * The first record has seq 1 and prevHash null.
 *
 * A head file ({seq, hash} of the last record), kept apart from the log, catches what the
 * chain alone cannot: records cut off the end. It is updated *after* the record is fsynced,
 * so a crash in between leaves the head one record behind (harmless; the next append moves it
 * on), never ahead. The head is one fixed-width line rewritten in place (a single sub-sector
 * pwrite + fdatasync) rather than replaced through temp-file + rename + directory fsync:
 * that halves the cost of an append, and a torn head after a power cut is reported by verify
 * ("head file is unreadable") and repaired by the next append — visible, never silent.
 *
 * Appends are serialized through a promise queue: concurrent callers never interleave lines
 * or fork the chain. Details pass through the redaction guard (src/telemetry/redact.ts).
 *
 * This is tamper-*evident* against edits by anyone without the ability to rewrite the whole
 * file and the head consistently; it is not a signature.
 */
export interface AuditRecord {
  seq: number
  at: string
  actor: string
  role: string | null
  action: string
  target: string | null
  result: 'ok' | 'error' | 'denied'
  details: Record<string, unknown>
  prevHash: string | null
  hash: string
}

export interface AuditPaths {
  auditLog: string
  auditHead: string
}

export interface AuditVerifyResult {
  ok: boolean
  records: number
  headHash: string | null
  problems: Array<{ line: number; problem: string }>
}

interface Head {
  seq: number
  hash: string
}

export class AuditLog implements AuditWriter {
  private readonly paths: AuditPaths
  private readonly now: () => Date
  private queue: Promise<void> = Promise.resolve()
  private fh: FileHandle | undefined
  private headFh: FileHandle | undefined
  private tail: Head | null | undefined

  constructor(paths: AuditPaths, opts: { now?: () => Date } = {}) {
    this.paths = { auditLog: paths.auditLog, auditHead: paths.auditHead }
    this.now = opts.now ?? (() => new Date())
  }

  append(rec: AuditRecordInput): Promise<void> {
    const p = this.queue.then(() => this.write(rec))
    this.queue = p.catch(() => undefined)
    return p
  }

  /** Waits for queued appends, then closes the log file. Appending later reopens it. */
  async close(): Promise<void> {
    const done = this.queue.then(async () => {
      await this.closeFiles()
    })
    this.queue = done.catch(() => undefined)
    await done
  }

  private async write(input: AuditRecordInput): Promise<void> {
    try {
      if (this.fh === undefined || this.tail === undefined) await this.open()
      const prev = this.tail ?? null
      const body: Omit<AuditRecord, 'hash'> = {
        seq: (prev?.seq ?? 0) + 1,
        at: this.now().toISOString(),
        actor: input.actor,
        role: input.role ?? null,
        action: input.action,
        target: input.target ?? null,
        result: input.result,
        // Round-trip through JSON so what we hash is exactly what a reader parses back.
        // By key (password, token, …) and by value (anything the vault has handed out).
        details: JSON.parse(JSON.stringify(redactor.scrubValue(redactDetails(input.details)), bigintSafe)) as Record<string, unknown>,
        prevHash: prev?.hash ?? null,
      }
      const hash = hashRecord(body)
      const line = JSON.stringify({ ...body, hash }) + '\n'
      const fh = this.fh as FileHandle
      await fh.write(line)
      await fh.sync()
      this.tail = { seq: body.seq, hash }
      const head = Buffer.from(formatHead(this.tail))
      const headFh = this.headFh as FileHandle
      await headFh.write(head, 0, head.length, 0)
      await headFh.datasync()
    } catch (err) {
      // Reopen next time: that re-reads the tail and terminates a partial line.
      await this.closeFiles().catch(() => undefined)
      throw err
    }
  }

  private async closeFiles(): Promise<void> {
    const { fh, headFh } = this
    this.fh = undefined
    this.headFh = undefined
    this.tail = undefined
    try {
      await fh?.close()
    } finally {
      await headFh?.close()
    }
  }

  /**
   * Continues the chain after a kernel restart. The head wins when it is at or ahead of the
   * log's last record: a truncated or rewritten tail then stays visible as a gap or a
   * prevHash mismatch at the next record, instead of being papered over.
   */
  private async open(): Promise<void> {
    const dir = path.dirname(this.paths.auditLog)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    await fsp.chmod(dir, 0o700)
    const fh = await fsp.open(this.paths.auditLog, 'a+', 0o600)
    try {
      await fh.chmod(0o600)
      const { last, endsWithNewline, size } = await readLastRecord(fh)
      if (size > 0 && !endsWithNewline) {
        // A crash mid-write left a partial line: end it, so the next record starts clean
        // (verify reports the partial line as garbage).
        await fh.write('\n')
        await fh.sync()
      }
      // An unreadable head must not stop the kernel from auditing; the chain continues from
      // the log and the next head write replaces it.
      const head = await readHead(this.paths.auditHead).catch(() => undefined)
      this.tail = head !== undefined && (last === null || head.seq >= last.seq) ? head : last
      const headFh = await fsp.open(this.paths.auditHead, 'a+', 0o600)
      await headFh.close()
      this.headFh = await fsp.open(this.paths.auditHead, 'r+')
      await this.headFh.chmod(0o600)
      // Make the two files' directory entries durable (once per open, not per append).
      await fsyncDir(dir)
      this.fh = fh
    } catch (err) {
      await fh.close()
      await this.headFh?.close().catch(() => undefined)
      this.headFh = undefined
      throw err
    }
  }

  /** Verifies this log between appends (queued behind any append in flight). */
  verify(): Promise<AuditVerifyResult> {
    const p = this.queue.then(() => AuditLog.verify(this.paths))
    this.queue = p.then(
      () => undefined,
      () => undefined,
    )
    return p
  }

  /**
   * Checks the whole chain and the head. Safe while a kernel is appending: the head is read
   * first (so later appends only add records after it), and a final line without its newline
   * — a write in progress, or a crash remnant that the next kernel start terminates and this
   * check then reports as garbage — is left out.
   */
  static async verify(paths: AuditPaths): Promise<AuditVerifyResult> {
    const problems: Array<{ line: number; problem: string }> = []
    const bySeq = new Map<number, { hash: string; line: number }>()
    let prev: { seq: number; hash: string } | null = null
    let records = 0
    let lineNo = 0

    let head: Head | undefined
    try {
      head = await readHead(paths.auditHead)
    } catch {
      problems.push({ line: 0, problem: 'head file is unreadable' })
    }

    const length = await completeLength(paths.auditLog)
    if (length > 0) {
      const input = createReadStream(paths.auditLog, { encoding: 'utf8', start: 0, end: length - 1 })
      const rl = createInterface({ input, crlfDelay: Infinity })
      for await (const text of rl) {
        lineNo++
        if (text.trim() === '') {
          problems.push({ line: lineNo, problem: 'empty line' })
          continue
        }
        let raw: unknown
        try {
          raw = JSON.parse(text)
        } catch {
          problems.push({ line: lineNo, problem: 'garbage: not a JSON record' })
          continue
        }
        const rec = asRecord(raw)
        if (rec === undefined) {
          problems.push({ line: lineNo, problem: 'garbage: not an audit record' })
          continue
        }
        records++
        const { hash, ...body } = rec
        if (hashRecord(body) !== hash) {
          problems.push({ line: lineNo, problem: `hash mismatch at seq ${rec.seq}: the record was edited` })
        }
        const expectedSeq: number = prev === null ? 1 : prev.seq + 1
        const expectedPrev: string | null = prev === null ? null : prev.hash
        if (rec.seq !== expectedSeq) {
          problems.push({
            line: lineNo,
            problem: `sequence gap: expected seq ${expectedSeq}, found ${rec.seq} (records deleted or reordered)`,
          })
        } else if (rec.prevHash !== expectedPrev) {
          problems.push({
            line: lineNo,
            problem: `chain broken at seq ${rec.seq}: prevHash does not match the previous record (a record was replaced or deleted)`,
          })
        }
        bySeq.set(rec.seq, { hash, line: lineNo })
        prev = { seq: rec.seq, hash }
      }
    }

    const lastSeq = prev?.seq ?? 0
    if (head === undefined) {
      if (records > 0 && !problems.some((p) => p.line === 0)) {
        problems.push({ line: 0, problem: 'head file is missing: cannot tell whether records were cut off the end' })
      }
    } else if (head.seq > lastSeq) {
      problems.push({
        line: lineNo + 1,
        problem: `truncated tail: the log ends at seq ${lastSeq} but the head records seq ${head.seq}`,
      })
    } else {
      const atHead = bySeq.get(head.seq)
      if (atHead === undefined || atHead.hash !== head.hash) {
        problems.push({
          line: atHead?.line ?? 0,
          problem: `head mismatch: the record at seq ${head.seq} does not have the hash the head records (tail rewritten)`,
        })
      }
      // Records after the head are fine: appended after the head was read, or written just
      // before a crash that kept the head from moving. Both chain correctly.
    }
    return { ok: problems.length === 0, records, headHash: prev?.hash ?? null, problems }
  }
}

export function hashRecord(body: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex')
}

/** JSON with object keys sorted at every level (undefined members dropped, as JSON does). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return '[' + value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',') + ']'
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return '{' + entries.map(([k, v]) => JSON.stringify(k) + ':' + canonicalJson(v)).join(',') + '}'
}

function bigintSafe(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v
}

const HEX64 = /^[0-9a-f]{64}$/

function asRecord(raw: unknown): AuditRecord | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined
  const r = raw as Record<string, unknown>
  if (!Number.isInteger(r.seq) || typeof r.hash !== 'string' || !HEX64.test(r.hash)) return undefined
  if (!(r.prevHash === null || (typeof r.prevHash === 'string' && HEX64.test(r.prevHash)))) return undefined
  if (typeof r.at !== 'string' || typeof r.actor !== 'string' || typeof r.action !== 'string') return undefined
  return r as unknown as AuditRecord
}

/** One fixed-width line, so rewriting it in place never leaves a longer old tail behind. */
const HEAD_WIDTH = 127

function formatHead(h: Head): string {
  return JSON.stringify({ seq: h.seq, hash: h.hash }).padEnd(HEAD_WIDTH, ' ') + '\n'
}

async function readHead(file: string): Promise<Head | undefined> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const raw = JSON.parse(text) as unknown
  const h = raw as Partial<Head> | null
  if (h === null || typeof h !== 'object' || !Number.isInteger(h.seq) || typeof h.hash !== 'string') {
    throw new Error('audit head file has unexpected content')
  }
  return { seq: h.seq as number, hash: h.hash }
}

/** Bytes up to and including the last newline (0 when the file is absent or has none). */
async function completeLength(file: string): Promise<number> {
  let fh: FileHandle
  try {
    fh = await fsp.open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
  try {
    const { size } = await fh.stat()
    let end = size
    while (end > 0) {
      const start = Math.max(0, end - 64 * 1024)
      const buf = Buffer.alloc(end - start)
      await fh.read(buf, 0, buf.length, start)
      const i = buf.lastIndexOf(0x0a)
      if (i >= 0) return start + i + 1
      end = start
    }
    return 0
  } finally {
    await fh.close()
  }
}

/** The last parseable record, reading backwards from the end in growing chunks. */
async function readLastRecord(fh: FileHandle): Promise<{ last: Head | null; endsWithNewline: boolean; size: number }> {
  const { size } = await fh.stat()
  if (size === 0) return { last: null, endsWithNewline: true, size }
  const lastByte = Buffer.alloc(1)
  await fh.read(lastByte, 0, 1, size - 1)
  const endsWithNewline = lastByte[0] === 0x0a
  let chunk = 64 * 1024
  for (;;) {
    const start = Math.max(0, size - chunk)
    const buf = Buffer.alloc(size - start)
    await fh.read(buf, 0, buf.length, start)
    const lines = buf.toString('utf8').split('\n')
    // The first piece may be a partial line unless we read from the start of the file.
    const candidates = start === 0 ? lines : lines.slice(1)
    for (let i = candidates.length - 1; i >= 0; i--) {
      const text = candidates[i] as string
      if (text.trim() === '') continue
      try {
        const rec = asRecord(JSON.parse(text))
        if (rec !== undefined) return { last: { seq: rec.seq, hash: rec.hash }, endsWithNewline, size }
      } catch {
        // garbage line: keep looking further back
      }
    }
    if (start === 0) return { last: null, endsWithNewline, size }
    chunk *= 4
  }
}
