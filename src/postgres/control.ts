import type { Options, ResultPromise } from 'execa'
import type { OsUser } from '../platform/os-user.js'
import type { PgBinaries } from '../platform/pg-tools.js'
import { run, spawnLong, type RunResult } from '../platform/process.js'

/**
 * The one Postgres control adapter: every start and stop of a postmaster in MagFlock goes
 * through here (instances, replication, restores). Two mechanisms, one place:
 *
 *   spawnPostmaster  `postgres -D` spawned detached in its own session: the kernel's instance
 *                    supervisor keeps the child handle and sees the exit at once;
 *   pgCtlStart/Stop  `pg_ctl start|stop -w` for a postmaster that another owner adopts later
 *                    (a replica clone, a restored copy, a temporary restore instance).
 *
 * A stop mode is the same signal either way: smart SIGTERM, fast SIGINT, immediate SIGQUIT
 * (what pg_ctl sends). Postgres refuses root, so every command runs as `runAs` when given.
 */
export type StopMode = 'fast' | 'immediate' | 'smart'

export const STOP_SIGNALS: Readonly<Record<StopMode, NodeJS.Signals>> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' }

export interface PgCtlStart {
  dataDir: string
  logFile: string
  /** pg_ctl's own wait (`-t`). */
  timeoutS: number
  /** Kill pg_ctl itself after this long (a little more than timeoutS). */
  timeoutMs: number
  /** Return the result on a non-zero exit instead of throwing (default: throw). */
  reject?: boolean
  signal?: AbortSignal | undefined
}

export interface PgCtlStop {
  dataDir: string
  mode: StopMode
  /** pg_ctl's own wait (`-t`); pg_ctl's default (60 s) when absent. */
  timeoutS?: number
  timeoutMs: number
}

export interface PgControl {
  spawnPostmaster(dataDir: string, stdio: Options['stdio']): ResultPromise
  pgCtlStart(o: PgCtlStart): Promise<RunResult>
  /** Never throws on pg_ctl's exit code (stopping what already stopped is fine); the caller checks. */
  pgCtlStop(o: PgCtlStop): Promise<RunResult>
}

/**
 * The binary spawnPostmaster runs, recorded for the kernel's first stage (src/postgres/early-start.ts),
 * which spawns it the same way (`postgres -D`, detached, as runAs) before the kernel has loaded.
 */
export function postmasterBinary(bins: PgBinaries): string {
  return bins.tool('postgres')
}

export function pgControl(bins: PgBinaries, runAs: OsUser | undefined): PgControl {
  return {
    spawnPostmaster(dataDir, stdio) {
      return spawnLong(bins.tool('postgres'), ['-D', dataDir], { runAs, detached: true, stdio })
    },
    pgCtlStart(o) {
      return run(bins.tool('pg_ctl'), ['-D', o.dataDir, '-l', o.logFile, '-w', '-t', String(o.timeoutS), 'start'], {
        runAs,
        timeoutMs: o.timeoutMs,
        ...(o.reject === false ? { reject: false } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      })
    },
    pgCtlStop(o) {
      const wait = o.timeoutS === undefined ? [] : ['-t', String(o.timeoutS)]
      return run(bins.tool('pg_ctl'), ['-D', o.dataDir, '-m', o.mode, '-w', ...wait, 'stop'], { runAs, reject: false, timeoutMs: o.timeoutMs })
    },
  }
}
