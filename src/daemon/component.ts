import { defineComponent as defineKernelComponent, type ComponentDef } from '../kernel/component.js'
import type { DaemonServices } from './services.js'

/**
 * The daemon's components, by name. Every component is declared the same way, in
 * src/daemon/components/<name>.ts with `defineComponent({ name, requires, restart, start })`,
 * and listed in src/daemon/components/index.ts. `requires` names other components from this
 * union, so an unknown dependency fails to compile; the kernel's graph also refuses it at boot.
 */
export type ComponentName =
  | 'postgres'
  | 'metrics'
  | 'wal-archiver'
  | 'wal-shipper'
  | 'backup-scheduler'
  | 'failover-monitor'
  | 'realtime'
  | 'pooler'
  | 'health'
  | 'extensions'
  | 'cluster-node'

/** A component over the daemon's services: `ctx.services` is the typed DaemonServices. */
export type DaemonComponent = ComponentDef<DaemonServices, ComponentName>

export function defineComponent(def: DaemonComponent): DaemonComponent {
  return defineKernelComponent(def)
}
