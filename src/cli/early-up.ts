/**
 * `magflock up` fast path: bin/run.js calls startEarlyUp() before it loads oclif, so the
 * detached kernel (and the Postgres it starts) boots while oclif and the `up` command load,
 * instead of after. The `up` command then takes the launch this started (takeEarlyUp) and
 * waits for it exactly as it waits for its own ensureKernel(): same launch lock, same
 * liveness checks, same error reporting.
 *
 * Only argument lists the `up` command is certain to accept take this path (`up`, `--json`,
 * `--env NAME`, `--state-dir DIR`, each at most once): anything else (--help, --token, a
 * typo, a bad env name) goes the normal way, so bad input is refused by oclif before any
 * kernel starts. Kept free of oclif and of the config schema: it must load in a few ms.
 */
import path from 'node:path'
import { ensureKernel, type EnsureResult } from '../kernel/launcher.js'
import { resolveStateDir, stateLayout } from '../platform/paths.js'
import { readUserPrefs } from '../config/prefs-read.js'

/** Same as src/config/load.ts (not imported: load.ts pulls in the config schema). */
const ENV_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const DEFAULT_ENV = 'development'

interface EarlyUp {
  stateDir: string
  env: string
  projectDir: string
  result: Promise<EnsureResult>
}

let early: EarlyUp | undefined

/** What `up` would resolve from these arguments, or undefined when the normal path must decide. */
export function earlyUpPlan(args: readonly string[], environ: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): { stateDir: string; env: string } | undefined {
  const seen = new Set<string>()
  let envFlag: string | undefined
  let stateDirFlag: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    const eq = a.indexOf('=')
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a
    if (seen.has(name)) return undefined
    seen.add(name)
    if (name === '--json' && eq < 0) continue
    if (name !== '--env' && name !== '--state-dir') return undefined
    const value = eq > 0 ? a.slice(eq + 1) : args[++i]
    if (value === undefined || value === '' || value.startsWith('-')) return undefined
    if (name === '--env') envFlag = value
    else stateDirFlag = value
  }
  const env = envFlag ?? (environ.MAGFLOCK_ENV || undefined) ?? readUserPrefs(environ).defaultEnv ?? DEFAULT_ENV
  if (!ENV_NAME.test(env)) return undefined
  return { stateDir: resolveStateDir(stateDirFlag, environ, cwd), env }
}

/**
 * Starts ensureKernel() for `up ARGS` when the arguments are plain enough (see above). The
 * promise it returns settles once the kernel process has been spawned, or ensureKernel() has
 * settled without spawning one (a kernel already runs, an error), or after `maxWaitMs`:
 * bin/run.js awaits it before loading oclif, so the kernel's spawn does not queue behind
 * oclif's module loading (which took the spawn from ~+45 ms to +110–230 ms on a loaded
 * machine). What `up` waits for and reports is unchanged (takeEarlyUp).
 */
export function startEarlyUp(args: readonly string[], maxWaitMs = 150): Promise<void> {
  const plan = earlyUpPlan(args)
  if (!plan) return Promise.resolve()
  const projectDir = process.cwd()
  let spawned: () => void = () => undefined
  const launched = new Promise<void>((resolve) => (spawned = resolve))
  const result = ensureKernel(stateLayout(plan.stateDir), { projectDir, env: plan.env, onSpawn: () => spawned() })
  // Awaited by the `up` command; until then a failure must not count as unhandled.
  result.catch(() => undefined)
  early = { ...plan, projectDir, result }
  let timer: NodeJS.Timeout | undefined
  const capped = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)))
  return Promise.race([launched, result.then(() => undefined, () => undefined), capped]).finally(() => clearTimeout(timer))
}

/**
 * The launch startEarlyUp() began, if it was for this state dir, env and project dir (what
 * the `up` command resolved itself); otherwise undefined and the command launches its own.
 */
export function takeEarlyUp(stateDir: string, env: string, projectDir: string): Promise<EnsureResult> | undefined {
  const e = early
  early = undefined
  if (!e || path.resolve(e.stateDir) !== path.resolve(stateDir) || e.env !== env || e.projectDir !== projectDir) return undefined
  return e.result
}
