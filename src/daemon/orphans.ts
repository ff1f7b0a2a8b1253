import { promises as fsp, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { isInstanceName, type StateLayout } from '../platform/paths.js'
import { isOurPostmaster, readPostmasterPid } from '../postgres/pidfile.js'
import { isProcessAliveSync } from '../platform/pids.js'
import { sweepPassfiles } from '../platform/process.js'
import { listBackups, PARTIAL_SUFFIX } from '../backup/manifest.js'
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
    if (!isInstanceName(name)) continue // not ours: never build a path from it
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

/** Tools the kernel runs as helpers; none of them may outlive the kernel that started it. */
const HELPER_TOOLS = new Set(['pg_basebackup', 'pg_receivewal', 'pg_dump', 'pg_restore', 'pg_rewind', 'pg_verifybackup', 'initdb', 'tar', 'lz4'])

/**
 * Helper processes a killed kernel left behind: a helper tool whose arguments name a path in
 * this state dir. The caller holds the kernel lock, so no live kernel of this flock owns any
 * of them. (Helpers die with their kernel through a parent-death signal; this catches those
 * started before that existed, by a runner without setpriv, and a helper's own forked child,
 * which no parent-death signal reaches: pg_basebackup's WAL streamer.)
 */
export function orphanHelpers(layout: StateLayout, procDir = '/proc'): Array<{ pid: number; tool: string }> {
  const found: Array<{ pid: number; tool: string }> = []
  const prefix = layout.root.endsWith('/') ? layout.root : layout.root + '/'
  let entries: string[]
  try {
    entries = readdirSync(procDir)
  } catch {
    return found
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue
    let argv: string[]
    try {
      argv = readFileSync(`${procDir}/${e}/cmdline`, 'utf8').split('\0').filter(Boolean)
    } catch {
      continue
    }
    const tool = path.basename(argv[0] ?? '')
    if (!HELPER_TOOLS.has(tool)) continue
    if (!argv.slice(1).some((a) => a.startsWith(prefix) || a.includes(`=${prefix}`))) continue
    if (isProcessAliveSync(Number(e))) found.push({ pid: Number(e), tool })
  }
  return found
}

export interface LeftoversReport {
  /** Helper processes of a dead kernel, SIGKILLed. */
  killed: Array<{ pid: number; tool: string }>
  /** Interrupted backups (`<id>.partial` whose writer is dead), removed. */
  backupsRemoved: string[]
  /** Temporary passfiles of dead processes, removed. */
  passfilesRemoved: number
}

/**
 * What a kernel killed mid-command leaves behind, cleaned by the next kernel at boot (under
 * the kernel lock, before any component starts): orphaned helpers (a pg_basebackup pinning
 * WAL, a pg_receivewal holding the archive slot), half-written backups, passfiles.
 * Replication slots held by such an orphan are freed when it dies; the archive slot is also
 * reclaimed by the wal-archiver itself (src/backup/archiver.ts).
 */
export async function cleanLeftovers(layout: StateLayout): Promise<LeftoversReport> {
  const killed = orphanHelpers(layout)
  for (const h of killed) {
    try {
      process.kill(h.pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + 5000
  while (killed.some((h) => isProcessAliveSync(h.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const { incomplete } = await listBackups(layout.backupsDir)
  const backupsRemoved: string[] = []
  for (const b of incomplete) {
    if (b.state !== 'interrupted' || !b.dir.endsWith(PARTIAL_SUFFIX)) continue
    await fsp.rm(b.dir, { recursive: true, force: true })
    backupsRemoved.push(b.id)
  }
  const passfilesRemoved = sweepPassfiles().length
  return { killed, backupsRemoved, passfilesRemoved }
}
