import { promises as fsp } from 'node:fs'
import { Flags } from '@oclif/core'
import { NODE_KERNEL_RUNNING } from '../cluster/errors.js'
import { clusterSettingsFile, parseNodeFlags, readClusterSettings, saveClusterSettings, type ClusterSettings, type NodeFlags } from '../cluster/node-settings.js'
import { kernelLiveness } from '../kernel/state.js'
import type { StateLayout } from '../platform/paths.js'

/** The node flags of `up` and `node join` (all three together). */
export const nodeFlags = {
  etcd: Flags.string({ summary: 'Client URLs of the etcd members, comma separated: this kernel becomes a node of a multi-host flock.', helpGroup: 'NODE' }),
  node: Flags.string({ summary: 'This node\'s name in the flock (once per machine; its instance is NAME_1).', helpGroup: 'NODE' }),
  listen: Flags.string({ summary: 'The address of this machine the other nodes reach (Postgres listens there, TLS only).', helpGroup: 'NODE' }),
  ttl: Flags.integer({
    summary: 'Leader lease in seconds (default 2.5; the same on every node). A primary demotes itself 1 s before another node may take its key; a kernel must restart within it to avoid a failover.',
    min: 2,
    max: 60,
    helpGroup: 'NODE',
  }),
}

/**
 * Before the kernel starts: records the node settings (`<state>/cluster.json`) the kernel
 * boots from. Refuses to turn a running one-host kernel into a node. Undefined: no node flags.
 */
export async function prepareNode(layout: StateLayout, flags: NodeFlags, bootstrap: 'primary' | 'replica', standby?: 'sync' | 'async'): Promise<{ settings: ClusterSettings; created: boolean } | undefined> {
  const asked = parseNodeFlags(flags)
  if (!asked) return undefined
  const existed = await readClusterSettings(layout.root)
  const live = await kernelLiveness(layout).catch(() => ({ state: 'absent' as const }))
  if (live.state === 'running' && !existed) throw NODE_KERNEL_RUNNING({})
  return { settings: await saveClusterSettings(layout.root, { ...asked, ...(standby ? { standby } : {}) }, bootstrap), created: !existed }
}

/**
 * Starts the kernel of a node; when the settings were recorded by this very command and the
 * kernel did not come up (no certificates, a flock led elsewhere, missing secrets, a lease
 * unsafe beside the flock's), they are removed again, and `undo` takes back what else the
 * command brought in (a join bundle's material) unless a kernel runs after all (a start that
 * timed out): bad input leaves the state directory as it was.
 */
export async function launchNode<T>(layout: StateLayout, prepared: { created: boolean } | undefined, launch: () => Promise<T>, undo?: () => Promise<void>): Promise<T> {
  try {
    return await launch()
  } catch (err) {
    if (prepared?.created) {
      await fsp.rm(clusterSettingsFile(layout.root), { force: true })
      if (undo && (await kernelLiveness(layout).catch(() => ({ state: 'absent' as const }))).state !== 'running') await undo().catch(() => undefined)
    }
    throw err
  }
}
