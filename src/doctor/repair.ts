import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { defineError, isMagflockError } from '../errors/index.js'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import type { StateLayout } from '../platform/paths.js'
import { kernelLiveness } from '../kernel/state.js'
import { isOurPostmaster, readPostmasterPid } from '../postgres/pidfile.js'
import { readFence } from '../replication/fence.js'

/**
 * `magflock doctor --repair`: rebuilds `<state>/topology.json` from what is on disk and
 * running, when the file is corrupt or missing, or lacks an instance whose data dir is there
 * (the file was moved aside and a boot wrote one with the primary only). Evidence per
 * instance directory `instances/<name>/data`:
 *   - a fence marker (`fence.json`)       → fenced (a failed-over old primary; stays down),
 *   - `standby.signal`                     → replica (its upstream from primary_conninfo),
 *   - neither                              → the primary if the replicas follow its port (else
 *     the one named `primary`, else the only one); any other is a standalone restored copy,
 *   - `adding.json` (an interrupted `replica add`) → skipped: the next kernel rolls it back.
 * The port is the running postmaster's (postmaster.pid), else the one its config sets. Only
 * with the kernel stopped; the old file is kept beside as `topology.json.corrupt-<time>`.
 */

const Topology = z.object({
  instances: z.array(z.object({ name: z.string(), role: z.enum(['primary', 'replica', 'fenced', 'standalone']), port: z.number().int() })),
})
type Role = 'primary' | 'replica' | 'fenced' | 'standalone'

export interface DiscoveredInstance {
  name: string
  role: Role
  port: number
  running: boolean
  /** Why this role: the evidence found. */
  evidence: string
}

export interface RepairResult {
  /** What topology.json was before: missing, corrupt (unreadable), or valid. */
  before: 'missing' | 'corrupt' | 'valid'
  /** True when topology.json was (re)written. */
  repaired: boolean
  file: string
  /** Where the unreadable file was moved, if it was. */
  movedAside: string | null
  instances: DiscoveredInstance[]
  /** Instance directories left out, and why. */
  skipped: Array<{ name: string; why: string }>
  /** One sentence per change ("added r1 as replica (standby.signal; running on :5434)"). */
  changes: string[]
}

export const REPAIR_KERNEL_RUNNING = defineError<{ pid: number }>({
  code: 'E_REPAIR_KERNEL_RUNNING',
  class: 'failed_precondition',
  area: 'doctor',
  message: (a) => `The kernel (pid ${a.pid}) is running; it owns topology.json and would overwrite a repair.`,
  hint: () => 'Stop it with `magflock kernel stop` (Postgres keeps serving), run `magflock doctor --repair`, then `magflock up`.',
})

export const REPAIR_AMBIGUOUS = defineError<{ candidates: string[] }>({
  code: 'E_REPAIR_AMBIGUOUS',
  class: 'failed_precondition',
  area: 'doctor',
  message: (a) => `Cannot tell which instance is the primary: ${a.candidates.join(', ')} all run without standby.signal and no replica follows any of them.`,
  hint: () => 'Move the instance directories that are not part of the flock out of <state>/instances, then run `magflock doctor --repair` again.',
})

const PORT_RE = /^\s*port\s*=\s*'?(\d+)'?/m
const CONNINFO_PORT_RE = /^\s*primary_conninfo\s*=\s*'[^']*\bport=(\d+)/m

async function readText(file: string): Promise<string> {
  return fsp.readFile(file, 'utf8').catch(() => '')
}

/** The port a data dir's configuration sets (postgresql.auto.conf wins over magflock.conf). */
function lastPort(...texts: string[]): number | undefined {
  let port: number | undefined
  for (const t of texts) {
    const all = [...t.matchAll(new RegExp(PORT_RE.source, 'gm'))]
    const m = all[all.length - 1]
    if (m) port = Number(m[1])
  }
  return port
}

async function exists(file: string): Promise<boolean> {
  return fsp.access(file).then(
    () => true,
    () => false,
  )
}

/** What the instance directories say the flock is (see the module comment). */
export async function discoverTopology(layout: StateLayout): Promise<{ instances: DiscoveredInstance[]; skipped: Array<{ name: string; why: string }> }> {
  const names = (await fsp.readdir(layout.instancesDir).catch(() => [] as string[])).sort()
  const skipped: Array<{ name: string; why: string }> = []
  const found: Array<DiscoveredInstance & { upstreamPort?: number | undefined; standby: boolean; fenced: boolean }> = []
  for (const name of names) {
    if (!/^[a-z][a-z0-9_-]{0,62}$/.test(name)) {
      skipped.push({ name, why: 'not a valid instance name' })
      continue
    }
    const instanceDir = layout.instanceDir(name)
    const dataDir = layout.dataDir(name)
    if (await exists(path.join(instanceDir, 'adding.json'))) {
      skipped.push({ name, why: 'an interrupted `replica add` (the next kernel rolls it back)' })
      continue
    }
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
      skipped.push({ name, why: 'no data directory' })
      continue
    }
    const pm = await readPostmasterPid(dataDir).catch(() => undefined)
    const running = pm !== undefined && (await isOurPostmaster(pm.pid, dataDir))
    const auto = await readText(path.join(dataDir, 'postgresql.auto.conf'))
    const port = (running && pm?.port) || lastPort(await readText(path.join(dataDir, 'magflock.conf')), auto)
    if (!port) {
      skipped.push({ name, why: 'no port in its configuration' })
      continue
    }
    const fenced = (await readFence(instanceDir).catch(() => undefined)) !== undefined
    const standby = await exists(path.join(dataDir, 'standby.signal'))
    const up = CONNINFO_PORT_RE.exec(auto)
    found.push({ name, role: 'standalone', port, running, evidence: '', upstreamPort: up ? Number(up[1]) : undefined, standby, fenced })
  }
  const followed = new Set(found.filter((f) => f.standby && !f.fenced).map((f) => f.upstreamPort))
  const candidates = found.filter((f) => !f.fenced && !f.standby)
  const primary =
    candidates.find((c) => followed.has(c.port)) ?? candidates.find((c) => c.name === 'primary') ?? (candidates.length === 1 ? candidates[0] : undefined)
  if (!primary && candidates.length > 1) throw REPAIR_AMBIGUOUS({ candidates: candidates.map((c) => c.name) })
  const where = (f: { running: boolean; port: number }) => (f.running ? `running on :${f.port}` : `stopped, port ${f.port}`)
  const instances = found.map(({ upstreamPort, standby, fenced, ...f }): DiscoveredInstance => {
    if (fenced) return { ...f, role: 'fenced', evidence: `fence marker; ${where(f)}` }
    if (standby) return { ...f, role: 'replica', evidence: `standby.signal${upstreamPort ? `, follows :${upstreamPort}` : ''}; ${where(f)}` }
    if (f.name === primary?.name) return { ...f, role: 'primary', evidence: `no standby.signal${followed.has(f.port) ? ', the replicas follow it' : ''}; ${where(f)}` }
    return { ...f, role: 'standalone', evidence: `no standby.signal and no replica follows it (a restored copy); ${where(f)}` }
  })
  // The primary first, as the kernel writes it.
  instances.sort((a, b) => (a.role === 'primary' ? -1 : b.role === 'primary' ? 1 : a.name.localeCompare(b.name)))
  return { instances, skipped }
}

export async function repairTopology(layout: StateLayout, opts: { dryRun?: boolean } = {}): Promise<RepairResult> {
  const live = await kernelLiveness(layout)
  if (live.state === 'running') throw REPAIR_KERNEL_RUNNING({ pid: live.info.pid })
  const file = path.join(layout.root, 'topology.json')
  let before: RepairResult['before'] = 'valid'
  let current: z.infer<typeof Topology> | undefined
  try {
    current = await readJsonFile(file, (v) => Topology.parse(v))
    if (!current) before = 'missing'
  } catch (err) {
    if (!isMagflockError(err) || err.code !== 'E_CORRUPT_STATE') throw err
    before = 'corrupt'
  }
  const { instances, skipped } = await discoverTopology(layout)
  const changes: string[] = []
  let next: z.infer<typeof Topology>['instances']
  if (current) {
    // A readable file keeps its entries (the kernel wrote them); what it lacks is added.
    next = [...current.instances]
    for (const d of instances) {
      if (next.some((e) => e.name === d.name)) continue
      // A second primary is never added next to the recorded one.
      const role = d.role === 'primary' && next.some((e) => e.role === 'primary') ? 'standalone' : d.role
      next.push({ name: d.name, role, port: d.port })
      changes.push(`added ${d.name} as ${role} (${d.evidence})`)
    }
  } else {
    next = instances.map((d) => ({ name: d.name, role: d.role, port: d.port }))
    for (const d of instances) changes.push(`${d.name}: ${d.role} (${d.evidence})`)
  }
  let movedAside: string | null = null
  const repaired = changes.length > 0 && !opts.dryRun
  if (repaired) {
    if (before === 'corrupt') {
      movedAside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
      await fsp.rename(file, movedAside)
    }
    await writeJsonAtomic(file, { instances: next }, 0o600)
  }
  return { before, repaired, file, movedAside, instances, skipped, changes }
}
