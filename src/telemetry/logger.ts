import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs'
import path from 'node:path'
import { pino, type DestinationStream, type Logger } from 'pino'
import { REDACTED, isSecretKey, redactString, redactValue } from './redact.js'
import { pinoRedactHooks } from '../secrets/redact.js'

const redactLine = pinoRedactHooks().streamWrite

/**
 * The kernel logger: pino JSON lines with `flock` and `env` on every line, to kernel.log
 * (appended, 0600, written synchronously so a crash loses nothing already logged), to stdout
 * when there is no file, or to both when `stdout` is set with a file (foreground kernel).
 * Components and instance supervisors log through child loggers:
 * `log.child({ component: 'postgres' })`, `log.child({ instance: 'primary' })`.
 *
 * Secrets: the well-known secret field names are redacted by path (cheap, top levels), and a
 * formatter scrubs the same keys at any depth plus token- and URL-password-shaped strings.
 */
export interface LoggerOptions {
  file?: string
  level?: string
  base: { flock: string; env: string }
  stdout?: boolean
  /** For tests: write here instead of a file or stdout. */
  destination?: DestinationStream
}

const SECRET_FIELDS = ['password', 'pass', 'passwd', 'secret', 'token', 'apiKey', 'masterKey', 'privateKey', 'authorization']

export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  'req.headers.authorization',
  'headers.authorization',
  'env.PGPASSWORD',
  '*.env.PGPASSWORD',
]

export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level ?? 'info',
    base: { pid: process.pid, flock: opts.base.flock, env: opts.base.env },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    formatters: {
      level: (label: string) => ({ level: label }),
      log: (obj: Record<string, unknown>) => scrub(obj),
    },
    // formatters.log runs before serializers and already serializes errors (scrubbed); the
    // default err serializer would re-wrap that plain object, so pass it through.
    serializers: { err: passThrough, error: passThrough },
    // Value-based: every secret the vault has read or written this process is scrubbed from
    // the serialized line, whatever field (or message text) it turns up in.
    hooks: { streamWrite: (line: string) => uniqueKeys(redactLine(line)) },
  }
  if (opts.destination !== undefined) return pino(options, opts.destination)
  const stdout = pino.destination({ dest: 1, sync: true })
  if (opts.file === undefined) return pino(options, stdout)
  mkdirSync(path.dirname(opts.file), { recursive: true })
  // Create with 0600 (and tighten an existing file): the log names users, databases and hosts.
  closeSync(openSync(opts.file, 'a', 0o600))
  chmodSync(opts.file, 0o600)
  const file = pino.destination({ dest: opts.file, append: true, sync: true, mkdir: true })
  // In the foreground the operator watches stdout, and `magflock kernel logs` still reads the file.
  if (opts.stdout === true) return pino(options, pino.multistream([{ level: 'trace', stream: file }, { level: 'trace', stream: stdout }]))
  return pino(options, file)
}

/**
 * pino writes base fields, child bindings and the call's object one after another, so
 * `log.child({ instance }).info({ instance, pid }, …)` would write "instance" (and "pid")
 * twice: JSON that many tools read differently. A line whose text names a key more than once
 * is rewritten with each key once, the most specific (last) value winning, in first-seen order.
 */
export function uniqueKeys(line: string): string {
  let obj: unknown
  try {
    obj = JSON.parse(line)
  } catch {
    return line
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return line
  // JSON.parse keeps one value per key; compare the top-level key count with the text's.
  const keys = Object.keys(obj).length
  if (countTopLevelKeys(line) === keys) return line
  return JSON.stringify(obj) + (line.endsWith('\n') ? '\n' : '')
}

/** Number of "key": entries at depth 1 of a JSON object text (strings skipped properly). */
function countTopLevelKeys(text: string): number {
  let depth = 0
  let n = 0
  let expectKey = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++
      if (depth === 1 && expectKey) {
        n++
        expectKey = false
      }
    } else if (c === '{' || c === '[') {
      depth++
      if (depth === 1 && c === '{') expectKey = true
    } else if (c === '}' || c === ']') depth--
    else if (c === ',' && depth === 1) expectKey = true
  }
  return n
}

function passThrough(v: unknown): unknown {
  return v
}

function scrub(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) {
    if (isSecretKey(k)) out[k] = REDACTED
    else if (v instanceof Error) out[k] = serializeError(v)
    else out[k] = redactValue(v)
  }
  return out
}

/** pino's err serializer shape, with message and stack scrubbed. */
function serializeError(err: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: err.name,
    message: redactString(err.message),
    stack: err.stack === undefined ? undefined : redactString(err.stack),
  }
  const code = (err as { code?: unknown }).code
  if (code !== undefined) out.code = code
  if (err.cause instanceof Error && depth < 5) out.cause = serializeError(err.cause, depth + 1)
  return out
}
