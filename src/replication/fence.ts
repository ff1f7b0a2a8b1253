import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { FENCED } from './errors.js'
import { killInstance, writeStandbySignal, type PgNode, type ReplicationEnv } from './pg.js'

/**
 * Fencing: an old primary must never accept writes again once a replica was promoted.
 *
 *  1. Every process of the instance is killed (immediate stop, then SIGKILL of whatever still
 *     works in its data dir: a backend orphaned by a killed postmaster could still commit).
 *  2. standby.signal goes into its data dir, so even a hand-run `pg_ctl start` comes up
 *     read-only in recovery rather than as a second primary.
 *  3. A fence marker (<instanceDir>/fence.json, outside the data dir so pg_rewind and
 *     re-clones do not touch it) that the instance start path checks with
 *     `assertNotFenced()`; only `rejoin` removes it, after the instance follows the new primary.
 */
export const FenceMarker = z.object({
  name: z.string(),
  reason: z.string(),
  fencedAt: z.string(),
  newPrimary: z.string().optional(),
})
export type FenceMarker = z.infer<typeof FenceMarker>

export function fencePath(instanceDir: string): string {
  return path.join(instanceDir, 'fence.json')
}

export async function readFence(instanceDir: string): Promise<FenceMarker | undefined> {
  return readJsonFile(fencePath(instanceDir), (v) => FenceMarker.parse(v))
}

/** For the instance start path: throws E_INSTANCE_FENCED when the instance is fenced. */
export async function assertNotFenced(name: string, instanceDir: string): Promise<void> {
  const f = await readFence(instanceDir)
  if (f) throw FENCED({ name, reason: f.reason })
}

export async function clearFence(instanceDir: string): Promise<void> {
  await fsp.rm(fencePath(instanceDir), { force: true })
}

export async function fence(env: ReplicationEnv, node: PgNode, reason: string, newPrimary?: string): Promise<{ killed: number[] }> {
  // The marker first: from here on nothing may start it as a primary, even if we die mid-way.
  await writeJsonAtomic(fencePath(node.instanceDir), {
    name: node.name,
    reason,
    fencedAt: new Date().toISOString(),
    ...(newPrimary ? { newPrimary } : {}),
  } satisfies FenceMarker)
  const killed = await killInstance(env, node)
  // The data dir may be gone or unreadable (that can be why we fail over); the marker still holds.
  await writeStandbySignal(env, node.dataDir).catch(() => undefined)
  return { killed }
}
