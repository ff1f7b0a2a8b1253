import { promises as fsp } from 'node:fs'
import type { StateLayout } from '../platform/paths.js'
import { isOurPostmaster, readPostmasterPid } from '../postgres/pidfile.js'
import { isProcessAliveSync } from '../platform/pids.js'
import { stopOrphanPooler } from '../pooler/process.js'
import { poolerLayout } from '../pooler/ini.js'

/**
 * Stops postmasters of this flock that run without a kernel (the kernel was killed and
 * nobody re-adopted them). Only a pid that postmaster.pid names AND that is a postgres for
 * that data dir is signalled: a recycled pid is never touched. Fast shutdown (SIGINT), then
 * immediate (SIGQUIT) if it has not exited after 60 s.
 */
export async function stopOrphanInstances(layout: StateLayout): Promise<string[]> {
  const names = await fsp.readdir(layout.instancesDir).catch(() => [] as string[])
  const stopped: string[] = []
  for (const name of names.sort()) {
    const dataDir = layout.dataDir(name)
    const pm = await readPostmasterPid(dataDir).catch(() => undefined)
    if (!pm || !isProcessAliveSync(pm.pid) || !(await isOurPostmaster(pm.pid, dataDir))) continue
    process.kill(pm.pid, 'SIGINT')
    const deadline = Date.now() + 60_000
    while (isProcessAliveSync(pm.pid)) {
      if (Date.now() > deadline) {
        process.kill(pm.pid, 'SIGQUIT')
        break
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    stopped.push(name)
  }
  // The managed PgBouncer outlives a kernel too (docs/pooling.md).
  await stopOrphanPooler(poolerLayout(layout.root)).catch(() => false)
  return stopped
}
