import { execa, type Options, type ResultPromise } from 'execa'
import { BINARY_MISSING, COMMAND_FAILED, TIMEOUT } from '../errors/index.js'
import type { OsUser } from './os-user.js'

/**
 * The one place that spawns processes. It:
 *  - runs Postgres tools as the unprivileged OS user when we are root,
 *  - redacts secret values from the argv it logs and from the errors it raises,
 *  - enforces a timeout and maps a missing binary to E_BINARY_MISSING naming the tool.
 * Secrets are passed through the environment (PGPASSWORD) or files, never argv.
 */
export interface RunOptions {
  runAs?: OsUser | undefined
  env?: Record<string, string | undefined>
  cwd?: string
  timeoutMs?: number
  input?: string
  /** Values to scrub from logs and error messages. */
  secrets?: string[]
  /** Logger for the command line (redacted). */
  log?: (msg: string, fields: Record<string, unknown>) => void
  /** Return instead of throwing on non-zero exit. */
  reject?: boolean
  signal?: AbortSignal
}

export interface RunResult {
  exitCode: number
  stdout: string
  stderr: string
}

export function redact(text: string, secrets: string[] = []): string {
  let out = text
  for (const s of secrets) if (s) out = out.split(s).join('***')
  return out
}

export function spawnOptions(opts: RunOptions): Options {
  const o: Record<string, unknown> & { env: Record<string, string | undefined> } = {
    env: { ...(opts.env ?? {}) },
    extendEnv: true,
    reject: false,
    stripFinalNewline: true,
  }
  if (opts.cwd) o.cwd = opts.cwd
  if (opts.timeoutMs) o.timeout = opts.timeoutMs
  if (opts.input !== undefined) o.input = opts.input
  if (opts.signal) o.cancelSignal = opts.signal
  if (opts.runAs) {
    o.uid = opts.runAs.uid
    o.gid = opts.runAs.gid
    o.env.HOME = opts.runAs.home
    o.env.USER = opts.runAs.name
    // The tool must be able to chdir: our cwd may be a root-only directory.
    if (!opts.cwd) o.cwd = '/tmp'
  }
  return o as Options
}

export async function run(bin: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const tool = bin.split('/').pop() ?? bin
  opts.log?.('exec', { cmd: redact([bin, ...args].join(' '), opts.secrets) })
  const res = await execa(bin, args, spawnOptions(opts))
  const stderr = redact(String(res.stderr ?? ''), opts.secrets)
  const stdout = String(res.stdout ?? '')
  if ((res as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(res.message ?? '')) && res.exitCode === undefined) {
    throw BINARY_MISSING({ tool, searched: [bin] })
  }
  if (res.timedOut) throw TIMEOUT({ what: tool, ms: opts.timeoutMs ?? 0 })
  const exitCode = res.exitCode ?? -1
  if (exitCode !== 0 && opts.reject !== false) {
    throw COMMAND_FAILED({ tool, exitCode: res.signal ?? exitCode, stderr })
  }
  return { exitCode, stdout, stderr }
}

/** A long-running child (postgres, pg_receivewal): the caller owns its lifecycle. */
export function spawnLong(bin: string, args: string[], opts: RunOptions & { detached?: boolean; stdio?: Options['stdio'] }): ResultPromise {
  const o: Record<string, unknown> = { ...spawnOptions(opts) }
  o.detached = opts.detached ?? true
  o.stdio = opts.stdio ?? 'ignore'
  o.buffer = false
  return execa(bin, args, o as Options)
}
