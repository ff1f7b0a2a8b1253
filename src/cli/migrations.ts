import path from 'node:path'
import type { ProgressEvent } from '../api/route.js'
import { USAGE, isMagflockError } from '../errors/index.js'
import type { DriftItem } from '../migrations/drift.js'

/**
 * What `db migrate` and `db migrate status` share on the CLI side: which database they
 * target, and how progress and drift reports are shown. (Lives here, not in src/commands,
 * because oclif treats every file under src/commands as a command.)
 */
export type MigrateTarget = { kind: 'url'; url: string } | { kind: 'kernel'; database: string }

export function migrateTarget(flags: { db?: string | undefined; 'db-url'?: string | undefined }): MigrateTarget {
  if (flags['db-url']) return { kind: 'url', url: flags['db-url'] }
  if (flags.db) return { kind: 'kernel', database: flags.db }
  throw USAGE({ message: 'Say which database: --db NAME (a database of this flock) or --db-url URL (any Postgres).' })
}

export function migrationsDir(flag: string | undefined, configured?: string): string {
  return path.resolve(flag ?? configured ?? './migrations')
}

/**
 * Flags first, then the project's layered config (migrations.dir relative to the project,
 * migrations.lockTimeoutSeconds). The config is loaded only when a flag leaves a gap, so an
 * explicit `--dir … --lock-timeout …` works even next to an invalid magflock.yaml.
 */
export async function migrationSettings(flags: { dir?: string | undefined; lockTimeout?: number | undefined; env?: string | undefined }): Promise<{ dir: string; lockTimeoutSeconds: number }> {
  if (flags.dir !== undefined && flags.lockTimeout !== undefined) return { dir: path.resolve(flags.dir), lockTimeoutSeconds: flags.lockTimeout }
  const { loadConfig } = await import('../config/load.js')
  const { effectiveEnv } = await import('../config/flags.js')
  const { config } = await loadConfig({ cwd: process.cwd(), env: effectiveEnv(flags.env), environ: process.env })
  return {
    dir: migrationsDir(flags.dir, config.migrations.dir),
    lockTimeoutSeconds: flags.lockTimeout ?? config.migrations.lockTimeoutSeconds,
  }
}

/** Lines for a drift report, one per problem. */
export function driftLines(items: DriftItem[]): string[] {
  return items.map((i) => `  ${i.kind.padEnd(12)} ${i.detail}`)
}

export function driftOf(err: unknown): DriftItem[] | undefined {
  if (!isMagflockError(err)) return undefined
  const d = err.details?.drift
  return Array.isArray(d) ? (d as DriftItem[]) : undefined
}

/** Progress for a command: an ink bar on a TTY, otherwise one line per migration on stderr. */
export interface ProgressSink {
  onProgress(e: Omit<ProgressEvent, 'type'>): void
  done(summary: string): Promise<void>
  fail(message: string): Promise<void>
}

export async function progressSink(opts: { json: boolean; title: string; line: (msg: string) => void }): Promise<ProgressSink> {
  if (!opts.json && process.stderr.isTTY) {
    const { startProgressBar } = await import('../ui/progress-bar.js')
    const bar = await startProgressBar({ title: opts.title })
    return { onProgress: (e) => bar.update(e), done: (s) => bar.done(s), fail: (m) => bar.fail(m) }
  }
  return {
    onProgress: (e) => {
      if (e.phase === 'apply' || (e.phase === 'lock' && e.message.startsWith('waiting'))) opts.line(e.message)
    },
    done: async () => {},
    fail: async () => {},
  }
}
