import type { PrimaryTarget } from '../replication/hooks.js'
import type { PoolRow, StatsRow } from './admin.js'
import type { ReadOnlyPlan } from './readonly.js'

export interface PoolerStatus {
  pid: number
  adopted: boolean
  host: string
  port: number
  poolMode: string
  primary: PrimaryTarget
  paused: boolean
  lastRepoint: { from: string; to: string; at: string; planned: boolean } | null
  /** The read-only pool (`<db>.ro`); null when pooler.readOnly.enabled is false. */
  readOnly: ReadOnlyPlan | null
}

/**
 * What the running pooler component exposes to the control API (`pooler status`, and the
 * userlist refresh after `db create`). The component publishes it in the daemon's live
 * component slots (src/daemon/services.ts) while it runs.
 */
export interface PoolerRuntime {
  status(): PoolerStatus
  observe(): Promise<{ pools: PoolRow[]; stats: StatsRow[] }>
  refreshUsers(): Promise<void>
}
