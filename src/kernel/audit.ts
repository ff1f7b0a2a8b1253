import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream, promises as fsp, statSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { Counter, type Registry } from 'prom-client'
import { fsyncDir } from '../platform/fs.js'
import { redactDetails } from '../telemetry/redact.js'
import { redactor } from '../secrets/redact.js'
import type { AuditRecordInput, AuditWriter } from './component.js'
import type { SecretStore } from './services.js'

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
 * Keyed chain: once a kernel has a chain key (32 random bytes kept in the secret store, never
 * beside the log), every record carries `alg: "hmac-sha256"` and its `hash` is
 * HMAC-SHA256(key, canonical JSON). Rewriting the log and its head together then needs the
 * key. Records written before the key existed keep their plain sha256 (migration: the store
 * records `since`, the first keyed seq, so a record after it without the key is a rewrite).
 * The store also keeps `genesis`, the hash of the record at `since`: a log that was deleted
 * and started again from seq 1 cannot reproduce it.
 *
 * Anchor: a copy of the head kept outside audit/ (<state>/audit.anchor), updated after the
 * head. Deleting or truncating audit/ wholesale leaves the anchor ahead of the log, which
 * both the kernel (it refuses to continue) and `audit verify` see.
 *
 * Fail closed: a record that cannot be made durable rejects `append` with an
 * AuditUnavailable error (the control server then refuses the call). Before each append the
 * log, head and anchor files are checked to still be the ones the kernel opened (dev+ino):
 * a file replaced or deleted underneath (rm, mv, logrotate `create`) makes every later append
 * fail instead of writing into an unlinked inode. The kernel does not silently reopen: the
 * next open re-reads the files and refuses when the anchor is ahead of what it finds.
 *
 * What this proves and does not prove: docs/operations.md, "Audit guarantees".
 */
export interface AuditRecord {
  seq: number
  at: string
  actor: string
  role: string | null
  action: string
  target: string | null
  result: 'intent' | 'ok' | 'error' | 'denied'
  details: Record<string, unknown>
  prevHash: string | null
  /** Present on keyed records: `hash` is then an HMAC with the chain key. */
  alg?: typeof KEYED_ALG
  hash: string
}

export const KEYED_ALG = 'hmac-sha256'

export interface AuditPaths {
  auditLog: string
  auditHead: string
  /** The head's copy outside audit/; optional for callers that only know the directory. */
  auditAnchor?: string | undefined
}

/** The audit paths of a state directory, anchor included (kept outside audit/ on purpose). */
export function auditPathsOf(layout: { root: string; auditLog: string; auditHead: string }): Required<AuditPaths> {
  return { auditLog: layout.auditLog, auditHead: layout.auditHead, auditAnchor: path.join(layout.root, 'audit.anchor') }
}

/** The chain key and where keyed records start, as the secret store keeps them. */
export interface AuditChainKey {
  key: Buffer
  /** The first keyed seq. */
  since: number
  /** Hash of the record at `since`, once it is written. */
  genesis: string | null
}

export interface AuditKeyring {
  load(): Promise<AuditChainKey | undefined>
  create(since: number): Promise<AuditChainKey>
  /** Records the first keyed record actually written (normally at `since`). */
  setGenesis(k: AuditChainKey, seq: number, hash: string): Promise<void>
}

/** Internal secret name (the `@` keeps it out of user names and `secrets list`). */
export const AUDIT_KEY_SECRET = 'magflock.audit@chain'

/** The chain key in the flock's secret store (vault file or OS keychain). */
export function storeKeyring(store: SecretStore): AuditKeyring {
  const save = (k: AuditChainKey) => store.set(AUDIT_KEY_SECRET, JSON.stringify({ v: 1, key: k.key.toString('base64'), since: k.since, genesis: k.genesis }))
  return {
    async load() {
      const raw = await store.get(AUDIT_KEY_SECRET)
      if (raw === undefined) return undefined
      const j = JSON.parse(raw) as { key?: unknown; since?: unknown; genesis?: unknown }
      if (typeof j.key !== 'string' || !Number.isInteger(j.since) || !(j.genesis === null || typeof j.genesis === 'string')) {
        throw new Error(`the secret store entry ${AUDIT_KEY_SECRET} has unexpected content`)
      }
      return { key: Buffer.from(j.key, 'base64'), since: j.since as number, genesis: j.genesis }
    },
    async create(since) {
      const k = { key: randomBytes(32), since, genesis: null }
      await save(k)
      return k
    },
    async setGenesis(k, seq, hash) {
      await save({ ...k, since: seq, genesis: hash })
    },
  }
}

/** `magflock_audit_write_failures_total`: appends that could not be made durable. */
export function auditFailureCounter(registry: Registry): (err: AuditUnavailable) => void {
  const c = new Counter({
    name: 'magflock_audit_write_failures_total',
    help: 'Audit records that could not be made durable (the mutating call was refused, or its outcome went unrecorded).',
    registers: [registry],
  })
  return () => c.inc()
}

/** Why an append failed; the control server turns it into E_AUDIT_UNAVAILABLE. */
export class AuditUnavailable extends Error {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options)
    this.name = 'AuditUnavailable'
  }
}

export interface AuditOptions {
  now?: () => Date
  /** The chain key's home; without one the chain stays unkeyed (sha256), as before. */
  keyring?: AuditKeyring | undefined
  /** Called once per failed append (the kernel counts them in a metric). */
  onWriteFailure?: (err: AuditUnavailable) => void
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

interface FileId {
  dev: number
  ino: number
}

export class AuditLog implements AuditWriter {
  private readonly paths: AuditPaths
  private readonly now: () => Date
  private readonly keyring: AuditKeyring | undefined
  private readonly onWriteFailure: ((err: AuditUnavailable) => void) | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private fh: FileHandle | undefined
  private headFh: FileHandle | undefined
  private anchorFh: FileHandle | undefined
  private ids: Array<{ file: string; id: FileId }> = []
  private tail: Head | null | undefined
  private chainKey: AuditChainKey | undefined

  constructor(paths: AuditPaths, opts: AuditOptions = {}) {
    this.paths = { auditLog: paths.auditLog, auditHead: paths.auditHead, auditAnchor: paths.auditAnchor }
    this.now = opts.now ?? (() => new Date())
    this.keyring = opts.keyring
    this.onWriteFailure = opts.onWriteFailure
  }

  /** Appends one record once it is durable; resolves with its seq. Rejects with AuditUnavailable. */
  append(rec: AuditRecordInput): Promise<number> {
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

  private async write(input: AuditRecordInput): Promise<number> {
    try {
      if (this.fh === undefined || this.tail === undefined) await this.open()
      this.checkIdentity()
      const prev = this.tail ?? null
      const seq = (prev?.seq ?? 0) + 1
      const body: Omit<AuditRecord, 'hash'> = {
        seq,
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
        ...(this.chainKey !== undefined ? { alg: KEYED_ALG } : {}),
      }
      const hash = hashRecord(body, this.chainKey?.key)
      const line = JSON.stringify({ ...body, hash }) + '\n'
      const fh = this.fh as FileHandle
      await fh.write(line)
      await fh.sync()
      this.tail = { seq, hash }
      const head = Buffer.from(formatHead(this.tail))
      const headFh = this.headFh as FileHandle
      await headFh.write(head, 0, head.length, 0)
      await headFh.datasync()
      if (this.anchorFh !== undefined) {
        await this.anchorFh.write(head, 0, head.length, 0)
        await this.anchorFh.datasync()
      }
      const ck = this.chainKey
      if (ck !== undefined && ck.genesis === null && this.keyring !== undefined && seq >= ck.since) {
        // The record at `since` (or, after a crash that lost it, the first one written since).
        await this.keyring.setGenesis(ck, seq, hash)
        this.chainKey = { ...ck, since: seq, genesis: hash }
      }
      return seq
    } catch (err) {
      // Reopen next time: that re-reads the tail and terminates a partial line.
      await this.closeFiles().catch(() => undefined)
      const e = err instanceof AuditUnavailable ? err : new AuditUnavailable(describe(err), { cause: err })
      this.onWriteFailure?.(e)
      throw e
    }
  }

  /** The files must still be the ones we opened: never append to a deleted or replaced inode. */
  private checkIdentity(): void {
    for (const { file, id } of this.ids) {
      const st = statSync(file, { throwIfNoEntry: false })
      if (st === undefined) throw new AuditUnavailable(`${file} was deleted while the kernel had it open`)
      if (st.dev !== id.dev || st.ino !== id.ino) throw new AuditUnavailable(`${file} was replaced (moved, rotated or recreated) while the kernel had it open`)
    }
  }

  private async closeFiles(): Promise<void> {
    const { fh, headFh, anchorFh } = this
    this.fh = undefined
    this.headFh = undefined
    this.anchorFh = undefined
    this.ids = []
    this.tail = undefined
    try {
      await fh?.close()
    } finally {
      try {
        await headFh?.close()
      } finally {
        await anchorFh?.close()
      }
    }
  }

  /**
   * Continues the chain after a kernel restart. The head wins when it is at or ahead of the
   * log's last record: a truncated or rewritten tail then stays visible as a gap or a
   * prevHash mismatch at the next record, instead of being papered over. An anchor ahead of
   * both (audit/ deleted, replaced or truncated) refuses to continue at all.
   */
  private async open(): Promise<void> {
    const dir = path.dirname(this.paths.auditLog)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    await fsp.chmod(dir, 0o700)
    const fh = await fsp.open(this.paths.auditLog, 'a+', 0o600)
    const opened: FileHandle[] = [fh]
    try {
      await fh.chmod(0o600)
      const { last, endsWithNewline, size } = await readLastRecord(fh)
      // An unreadable head must not stop the kernel from auditing; the chain continues from
      // the log and the next head write replaces it.
      const head = await readHead(this.paths.auditHead).catch(() => undefined)
      const tail = head !== undefined && (last === null || head.seq >= last.seq) ? head : last
      const anchorFile = this.paths.auditAnchor
      if (anchorFile !== undefined) {
        let anchor: Head | undefined
        try {
          anchor = await readHead(anchorFile)
        } catch (err) {
          throw new AuditUnavailable(`the audit anchor ${anchorFile} is unreadable (${describe(err)})`, { cause: err })
        }
        // The anchor is written after the record is fsynced, so it is never ahead of the log's
        // last record unless records went missing.
        if (anchor !== undefined && anchor.seq > (last?.seq ?? 0)) {
          throw new AuditUnavailable(
            `the audit log ends at seq ${last?.seq ?? 0} but ${anchorFile} records seq ${anchor.seq}: audit/ was deleted, replaced or truncated`,
          )
        }
        if (anchor !== undefined && last !== null && anchor.seq === last.seq && anchor.hash !== last.hash) {
          throw new AuditUnavailable(`the audit log's last record (seq ${last.seq}) is not the one ${anchorFile} records: audit.jsonl was replaced`)
        }
      }
      if (size > 0 && !endsWithNewline) {
        // A crash mid-write left a partial line: end it, so the next record starts clean
        // (verify reports the partial line as garbage).
        await fh.write('\n')
        await fh.sync()
      }
      if (this.keyring !== undefined) {
        try {
          this.chainKey = (await this.keyring.load()) ?? (await this.keyring.create((tail?.seq ?? 0) + 1))
        } catch (err) {
          throw new AuditUnavailable(`the audit chain key in the secret store is unavailable (${describe(err)})`, { cause: err })
        }
      }
      const headInit = await fsp.open(this.paths.auditHead, 'a+', 0o600)
      await headInit.close()
      const headFh = await fsp.open(this.paths.auditHead, 'r+')
      opened.push(headFh)
      await headFh.chmod(0o600)
      let anchorFh: FileHandle | undefined
      if (anchorFile !== undefined) {
        const init = await fsp.open(anchorFile, 'a+', 0o600)
        await init.close()
        anchorFh = await fsp.open(anchorFile, 'r+')
        opened.push(anchorFh)
        await anchorFh.chmod(0o600)
      }
      // Make the files' directory entries durable (once per open, not per append).
      await fsyncDir(dir)
      if (anchorFile !== undefined) await fsyncDir(path.dirname(anchorFile))
      const ids: Array<{ file: string; id: FileId }> = []
      for (const [file, h] of [
        [this.paths.auditLog, fh],
        [this.paths.auditHead, headFh],
        ...(anchorFile !== undefined && anchorFh !== undefined ? [[anchorFile, anchorFh] as const] : []),
      ] as const) {
        const st = await h.stat()
        ids.push({ file, id: { dev: st.dev, ino: st.ino } })
      }
      this.fh = fh
      this.headFh = headFh
      this.anchorFh = anchorFh
      this.ids = ids
      this.tail = tail
    } catch (err) {
      for (const h of opened) await h.close().catch(() => undefined)
      throw err
    }
  }

  /** Verifies this log between appends (queued behind any append in flight). */
  verify(opts: VerifyOptions = {}): Promise<AuditVerifyResult> {
    const p = this.queue.then(() => AuditLog.verify(this.paths, { keyring: this.keyring, ...opts }))
    this.queue = p.then(
      () => undefined,
      () => undefined,
    )
    return p
  }

  /**
   * Checks the whole chain, the head and the anchor, and (with a keyring) the keyed part of
   * the chain and its genesis. Safe while a kernel is appending: the head and anchor are read
   * first (so later appends only add records after them), and a final line without its
   * newline — a write in progress, or a crash remnant that the next kernel start terminates
   * and this check then reports as garbage — is left out.
   */
  static async verify(paths: AuditPaths, opts: VerifyOptions = {}): Promise<AuditVerifyResult> {
    const problems: Array<{ line: number; problem: string }> = []
    const bySeq = new Map<number, { hash: string; line: number }>()
    let prev: { seq: number; hash: string } | null = null
    let records = 0
    let lineNo = 0
    // The key first: a keyring that fails is the caller's error (E_VAULT_…), not tampering.
    const ck = opts.keyring !== undefined ? await opts.keyring.load() : undefined

    let head: Head | undefined
    try {
      head = await readHead(paths.auditHead)
    } catch {
      problems.push({ line: 0, problem: 'head file is unreadable' })
    }
    let anchor: Head | undefined
    if (paths.auditAnchor !== undefined) {
      try {
        anchor = await readHead(paths.auditAnchor)
      } catch {
        problems.push({ line: 0, problem: `anchor file ${path.basename(paths.auditAnchor)} is unreadable` })
      }
    }

    const length = await completeLength(paths.auditLog)
    let firstKeyedSeq: number | undefined
    let unkeyedAfterKey = false
    let keyless = false
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
        if (rec.alg === KEYED_ALG) {
          firstKeyedSeq ??= rec.seq
          if (ck === undefined) {
            if (!keyless) {
              problems.push({
                line: lineNo,
                problem:
                  opts.keyring !== undefined
                    ? `keyed record at seq ${rec.seq} but the secret store holds no audit chain key (the store was replaced or reset)`
                    : `keyed record at seq ${rec.seq} cannot be checked without the audit chain key`,
              })
            }
            keyless = true
          } else if (!hashEquals(hashRecord(body, ck.key), hash)) {
            problems.push({ line: lineNo, problem: `hash mismatch at seq ${rec.seq}: the record was edited (its HMAC does not match the chain key)` })
          }
        } else if (rec.alg !== undefined) {
          problems.push({ line: lineNo, problem: `unknown hash algorithm at seq ${rec.seq}` })
        } else {
          if (hashRecord(body) !== hash) {
            problems.push({ line: lineNo, problem: `hash mismatch at seq ${rec.seq}: the record was edited` })
          }
          if ((ck !== undefined && rec.seq >= ck.since) || firstKeyedSeq !== undefined) {
            if (!unkeyedAfterKey) {
              problems.push({ line: lineNo, problem: `unkeyed record at seq ${rec.seq} after the chain became keyed: records were rewritten without the key` })
            }
            unkeyedAfterKey = true
          }
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
      checkAt(head, 'head', 'tail rewritten')
    }
    if (anchor !== undefined) {
      if (anchor.seq > lastSeq) {
        problems.push({
          line: lineNo + 1,
          problem:
            lastSeq === 0
              ? `the audit log is missing or empty but the anchor outside audit/ records seq ${anchor.seq}: the log was deleted or restarted`
              : `the log ends at seq ${lastSeq} but the anchor outside audit/ records seq ${anchor.seq}: records were cut off or the log was replaced`,
        })
      } else {
        checkAt(anchor, 'anchor', 'log rewritten or replaced')
      }
    } else if (paths.auditAnchor !== undefined && ck !== undefined && records > 0 && lastSeq >= ck.since) {
      problems.push({ line: 0, problem: `anchor file ${path.basename(paths.auditAnchor)} is missing` })
    }
    if (ck !== undefined && ck.genesis !== null) {
      const g = bySeq.get(ck.since)
      if (records === 0 || lastSeq < ck.since) {
        problems.push({
          line: lineNo + 1,
          problem: `the secret store records a keyed log from seq ${ck.since} that this log does not reach (it ends at seq ${lastSeq}): the log was deleted, truncated or restarted`,
        })
      } else if (g === undefined || g.hash !== ck.genesis) {
        problems.push({
          line: g?.line ?? 0,
          problem: `the record at seq ${ck.since} is not the one the secret store anchored: the log was restarted or rewritten`,
        })
      }
    }
    return { ok: problems.length === 0, records, headHash: prev?.hash ?? null, problems }

    function checkAt(h: Head, what: string, meaning: string): void {
      const at = bySeq.get(h.seq)
      if (at === undefined || at.hash !== h.hash) {
        problems.push({
          line: at?.line ?? 0,
          problem: `${what} mismatch: the record at seq ${h.seq} does not have the hash the ${what} records (${meaning})`,
        })
      }
      // Records after it are fine: appended after it was read, or written just before a
      // crash that kept it from moving. Both chain correctly.
    }
  }
}

export interface VerifyOptions {
  /** Where the chain key lives; its absence means only unkeyed checks (and keyed records unchecked). */
  keyring?: AuditKeyring | undefined
}

function describe(err: unknown): string {
  if (err instanceof AuditUnavailable) return err.reason
  const e = err as NodeJS.ErrnoException
  if (e?.code === 'EPERM' || e?.code === 'EACCES') return `${e.code}: the file is not writable (immutable flag, permissions or a read-only mount)`
  if (e?.code === 'EROFS') return 'EROFS: the file system is read-only'
  if (e?.code === 'ENOSPC') return 'ENOSPC: the disk is full'
  return err instanceof Error ? err.message : String(err)
}

function hashEquals(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex')
  const y = Buffer.from(b, 'hex')
  return x.length === y.length && timingSafeEqual(x, y)
}

/** sha256 of the canonical JSON; with a key, HMAC-SHA256 (keyed records carry `alg`). */
export function hashRecord(body: Omit<AuditRecord, 'hash'>, key?: Buffer): string {
  if (key !== undefined) return createHmac('sha256', key).update(canonicalJson(body)).digest('hex')
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
