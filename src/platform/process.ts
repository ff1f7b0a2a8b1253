import { accessSync, chownSync, constants as fsc, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execa, type Options, type ResultPromise } from 'execa'
import { BINARY_MISSING, COMMAND_FAILED, TIMEOUT } from '../errors/index.js'
import { isProcessAliveSync } from './pids.js'
import { childEnv } from './child-env.js'

/** An OS account a child runs as (src/platform/os-user.ts finds it; defined here, where it is used, so the two files do not import each other). */
export interface OsUser {
  name: string
  uid: number
  gid: number
  home: string
}

/**
 * The one place that spawns processes. It:
 *  - runs Postgres tools as the unprivileged OS user when we are root,
 *  - gives every child an allow-listed environment (locale, PATH, TZ and what the caller
 *    passes), never ours: no MAGFLOCK_* variable (master key, token) reaches a child,
 *  - never puts a password in a child's environment: a `PGPASSWORD` the caller passes is
 *    written to a 0600 passfile owned by the child's OS user (`PGPASSFILE`), removed when
 *    the child ends,
 *  - ties every helper (pg_dump, pg_basebackup, pg_receivewal, initdb, …) to our life with a
 *    parent-death signal (`setpriv --pdeathsig KILL`), so none outlives a killed kernel; a
 *    `detached` child (the postmaster) is exempt: Postgres outlives the kernel by design,
 *  - redacts secret values from the argv it logs and from the errors it raises,
 *  - enforces a timeout and maps a missing binary to E_BINARY_MISSING naming the tool.
 */
export interface RunOptions {
  runAs?: OsUser | undefined
  env?: Record<string, string | undefined>
  /**
   * Interactive tools the CLI starts for the operator (`db psql`) keep the operator's
   * environment (pager, terminal), minus MAGFLOCK_* variables. Kernel children never do.
   */
  inheritEnv?: boolean
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

// childEnv lives in its own module so that the kernel's first stage can use it without execa.
export { childEnv }

const PASSDIR_PREFIX = 'magflock-pass-'

/**
 * Writes `password` to a fresh passfile (`*:*:*:*:password`, 0600, in a 0700 directory,
 * both owned by the child's OS user) and returns its path and a remover. The directory name
 * carries our pid so a later kernel can remove what a killed one left (sweepPassfiles).
 */
export function writeTempPassfile(password: string, runAs?: OsUser): { file: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `${PASSDIR_PREFIX}${process.pid}-`))
  const file = path.join(dir, 'pgpass')
  const esc = password.replace(/\\/g, '\\\\').replace(/:/g, '\\:')
  writeFileSync(file, `*:*:*:*:${esc}\n`, { mode: 0o600 })
  if (runAs) {
    chownSync(dir, runAs.uid, runAs.gid)
    chownSync(file, runAs.uid, runAs.gid)
  }
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Removes passfile directories whose writing process is gone (a kernel killed mid-command). */
export function sweepPassfiles(tmp = os.tmpdir()): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(tmp)
  } catch {
    return removed
  }
  for (const name of names) {
    const m = new RegExp(`^${PASSDIR_PREFIX}(\\d+)-`).exec(name)
    if (!m || isProcessAliveSync(Number(m[1]))) continue
    const dir = path.join(tmp, name)
    try {
      if (!statSync(dir).isDirectory()) continue
      rmSync(dir, { recursive: true, force: true })
      removed.push(dir)
    } catch {
      // raced with another sweeper
    }
  }
  return removed
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p))

/**
 * bin/args wrapped so the child receives SIGKILL when we die (prctl PR_SET_PDEATHSIG through
 * util-linux's setpriv, applied after the uid switch so it is not cleared). A binary given by
 * absolute path that does not exist is not wrapped, so the spawn fails with ENOENT as before.
 */
export function withParentDeathSignal(bin: string, args: string[]): [string, string[]] {
  if (!SETPRIV || process.platform !== 'linux') return [bin, args]
  if (path.isAbsolute(bin)) {
    try {
      accessSync(bin, fsc.X_OK)
    } catch {
      return [bin, args]
    }
  }
  return [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]]
}

export function spawnOptions(opts: RunOptions, passfile?: string): Options {
  const extra: Record<string, string | undefined> = { ...(opts.env ?? {}) }
  if (passfile) extra.PGPASSFILE = passfile
  if (opts.runAs) {
    extra.HOME = opts.runAs.home
    extra.USER = opts.runAs.name
    extra.LOGNAME = opts.runAs.name
  }
  const o: Record<string, unknown> = {
    env: childEnv(extra, opts.inheritEnv === true),
    extendEnv: false,
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
    // The tool must be able to chdir: our cwd may be a root-only directory.
    if (!opts.cwd) o.cwd = '/tmp'
  }
  return o as Options
}

function passfileFor(opts: RunOptions): { file: string; remove(): void } | undefined {
  const pw = opts.env?.PGPASSWORD
  return pw === undefined ? undefined : writeTempPassfile(pw, opts.runAs)
}

export async function run(bin: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const tool = bin.split('/').pop() ?? bin
  opts.log?.('exec', { cmd: redact([bin, ...args].join(' '), opts.secrets) })
  const pass = passfileFor(opts)
  const [b, a] = withParentDeathSignal(bin, args)
  let res
  try {
    res = await execa(b, a, spawnOptions(opts, pass?.file))
  } finally {
    pass?.remove()
  }
  const stderr = redact(String(res.stderr ?? ''), opts.secrets)
  const stdout = String(res.stdout ?? '')
  if ((res as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(res.message ?? '')) && res.exitCode === undefined) {
    throw BINARY_MISSING({ tool, searched: [bin] })
  }
  if (b !== bin && res.exitCode === 127 && /^setpriv: failed to execute/m.test(stderr)) throw BINARY_MISSING({ tool, searched: [bin] })
  if (res.timedOut) throw TIMEOUT({ what: tool, ms: opts.timeoutMs ?? 0 })
  const exitCode = res.exitCode ?? -1
  if (exitCode !== 0 && opts.reject !== false) {
    throw COMMAND_FAILED({ tool, exitCode: res.signal ?? exitCode, stderr })
  }
  return { exitCode, stdout, stderr }
}

/**
 * A long-running child (postgres, pg_receivewal, pg_basebackup): the caller owns its
 * lifecycle. `detached` (the default) starts its own process group and outlives us; a
 * non-detached child dies with us (parent-death signal).
 */
export function spawnLong(bin: string, args: string[], opts: RunOptions & { detached?: boolean; stdio?: Options['stdio'] }): ResultPromise {
  const pass = passfileFor(opts)
  const o: Record<string, unknown> = { ...spawnOptions(opts, pass?.file) }
  o.detached = opts.detached ?? true
  o.stdio = opts.stdio ?? 'ignore'
  o.buffer = false
  const [b, a] = o.detached ? [bin, args] : withParentDeathSignal(bin, args)
  const child = execa(b, a, o as Options)
  if (pass) {
    const done = () => pass.remove()
    child.then(done, done)
  }
  return child
}
