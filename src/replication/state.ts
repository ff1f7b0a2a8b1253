import { z } from 'zod'
import { CORRUPT_STATE } from '../errors/index.js'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { INSTANCE_NAME_RULE, isInstanceName } from '../platform/paths.js'

/**
 * Replication facts the instance registry does not hold, kept in <state>/replication.json
 * (atomic writes): which replicas are synchronous, the last failover (for status and for a
 * kernel that restarts in the middle of one: `inProgress` says what to finish), and whether
 * the replication role is in place.
 */
export const ReplicationState = z.object({
  replicas: z.record(z.string(), z.object({ sync: z.boolean(), addedAt: z.string() })).default({}),
  failoversTotal: z.number().default(0),
  lastFailover: z
    .object({ from: z.string(), to: z.string(), reason: z.string(), at: z.string(), durationMs: z.number(), automatic: z.boolean() })
    .optional(),
  inProgress: z.object({ op: z.enum(['failover', 'switchover']), from: z.string(), to: z.string(), startedAt: z.string() }).optional(),
  /** Set once the replication role exists on the primary (role.ts); until then standbys log in as the superuser. */
  replicator: z.boolean().optional(),
})
export type ReplicationState = z.infer<typeof ReplicationState>

/** Instance names read back from disk must be names (E_CORRUPT_STATE naming the file otherwise). */
function checkNames(file: string, s: ReplicationState): ReplicationState {
  const names = [...Object.keys(s.replicas), ...(s.inProgress ? [s.inProgress.from, s.inProgress.to] : [])]
  const bad = names.find((n) => !isInstanceName(n))
  if (bad !== undefined) throw CORRUPT_STATE({ file, reason: `instance name "${bad.slice(0, 80)}" is not valid (${INSTANCE_NAME_RULE})` })
  return s
}

export class ReplicationStateFile {
  constructor(private readonly file: string) {}

  async read(): Promise<ReplicationState> {
    return (await readJsonFile(this.file, (v) => checkNames(this.file, ReplicationState.parse(v)))) ?? ReplicationState.parse({})
  }

  async update(fn: (s: ReplicationState) => void): Promise<ReplicationState> {
    const s = await this.read()
    fn(s)
    await writeJsonAtomic(this.file, s)
    return s
  }
}
