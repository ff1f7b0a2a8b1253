import { z } from 'zod'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'

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

export class ReplicationStateFile {
  constructor(private readonly file: string) {}

  async read(): Promise<ReplicationState> {
    return (await readJsonFile(this.file, (v) => ReplicationState.parse(v))) ?? ReplicationState.parse({})
  }

  async update(fn: (s: ReplicationState) => void): Promise<ReplicationState> {
    const s = await this.read()
    fn(s)
    await writeJsonAtomic(this.file, s)
    return s
  }
}
