import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { defineComponent } from '../component.js'
import { initInstance, instanceState, stopInstance, type InstanceSpec } from '../../postgres/instance.js'
import { INSTANCE_DATA_MISSING, TOPOLOGY_MISSING } from '../../postgres/errors.js'
import { readPostmasterPid } from '../../postgres/pidfile.js'
import { isProcessAliveSync } from '../../platform/pids.js'
import { InstanceSupervisor } from '../../postgres/supervisor.js'
import { readFence } from '../../replication/fence.js'
import { SUPERUSER_SECRET } from '../../secrets/names.js'
import { generateSecret } from '../../secrets/generate.js'
import { PORT_IN_USE } from '../../errors/index.js'
import { isPortFree } from '../../platform/ports.js'
import { undoInterruptedRestore } from '../../backup/restore.js'
import { writeSuperuserPgpass } from '../../postgres/pgpass.js'
import { exists } from '../../platform/fs.js'
import { discardEarlyPostmasters, isEarlyPid, LAUNCH_RECIPE_FILE, type LaunchRecipe } from '../../postgres/early-start.js'
import type { PgBinaries } from '../../postgres/binaries.js'
import { postmasterBinary } from '../../postgres/control.js'
import type { OsUser } from '../../platform/os-user.js'
import { writeJsonAtomic } from '../../platform/fs.js'
import { FIRST_INSTANCE, LEGACY_FIRST_INSTANCE, isFirstInstance } from '../instances.js'

/**
 * The `postgres` component: provisions the primary on first boot (initdb with checksums and
 * scram, a generated superuser password kept in the vault), then adopts or starts every
 * instance of the flock and supervises it. Postgres outlives the kernel: stopping this
 * component with keepRunningOnStop (kernel stop, or a kernel killed) leaves it serving.
 */
export const postgresComponent = defineComponent({
  name: 'postgres',
  requires: [],
  // The instance supervisors restart Postgres themselves; the component itself is not retried
  // at boot, so a port in use or a broken data dir is reported at once.
  restart: { policy: 'never' },
  stopTimeoutMs: 60_000,
  async start(ctx) {
    const k = ctx.services
    const { instances, kernelMetrics: metrics } = k
    const cfg = k.config()
    const topology = await instances.readTopology()
    // No topology yet: a fresh flock (its first instance is pg1), or a state dir from before
    // topology.json whose primary lives in instances/primary (kept under that name).
    const firstName = (await exists(k.layout.instanceDir(LEGACY_FIRST_INSTANCE))) ? LEGACY_FIRST_INSTANCE : FIRST_INSTANCE
    if (!topology) {
      // No topology but instance dirs beside the primary's: the file was lost (moved aside).
      // A boot with the primary only would orphan running replicas: repair first.
      const others = await otherInstanceDirs(k.layout.instancesDir, firstName)
      if (others.length > 0) throw TOPOLOGY_MISSING({ instances: others })
    }
    const members = topology?.instances ?? [{ name: firstName, role: 'primary' as const, port: cfg.postgres.port }]
    const started: InstanceSupervisor[] = []
    // A primary that cannot start must not keep a flock with replicas down: that is exactly
    // when a replica has to take over, and the failover monitor runs only in a booted kernel.
    // The primary is listed unsupervised (like a fenced one); the monitor sees it down, waits
    // out the grace period, fences it and promotes a replica (or the operator runs
    // `magflock failover`). A flock without replicas still fails the boot with the cause.
    const canFailOver = members.some((m) => m.role === 'replica')
    const bootWithoutPrimary = (spec: InstanceSpec, err: unknown) => {
      instances.add(spec, 'primary', undefined)
      ctx.log.error({ instance: spec.name, err: (err as Error).message }, 'the primary did not start; booting without it so that a replica can be promoted')
      ctx.events.publish('instance.failed', { instance: spec.name, reason: `did not start at kernel boot: ${(err as Error).message.split('\n')[0]}` })
    }
    try {
      for (const m of members) {
        // A fenced old primary must never run until `replica rejoin` turns it into a replica.
        if (m.role === 'fenced') {
          instances.add(instances.specFor(m.name, m.port, k.bins, k.runAs), 'fenced', undefined)
          ctx.log.warn({ instance: m.name }, 'not starting a fenced instance; `magflock replica rejoin` brings it back')
          continue
        }
        const port = m.role === 'primary' && isFirstInstance(m.name) ? cfg.postgres.port : m.port
        const spec = instances.specFor(m.name, port, k.bins, k.runAs)
        // A fence marker on a member the topology still lists as primary or replica: a kernel
        // died in the middle of a failover. The instance stays down under its recorded role;
        // the failover monitor finishes the failover (or a rejoin brings it back).
        if (await readFence(spec.instanceDir).catch(() => undefined)) {
          instances.add(spec, m.role, undefined)
          ctx.log.warn({ instance: m.name, role: m.role }, 'not starting a fenced instance (a failover was interrupted); the failover monitor finishes it')
          continue
        }
        if (m.role === 'primary') {
          const undone = await undoInterruptedRestore({ instanceDir: spec.instanceDir, dataDir: spec.dataDir, stop: () => stopInstance(spec, 'immediate') })
          if (undone) ctx.log.warn({ instance: spec.name, previous: undone }, 'an in-place restore was interrupted (kernel died); its previous data dir is back in place')
          const state = await instanceState(spec)
          // A flock that booted before (topology.json exists) whose primary has no data dir
          // lost it: initdb would hand clients an EMPTY primary. Never; with replicas the
          // kernel boots without it and the failover monitor promotes one.
          if (topology && state === 'absent') {
            const err = INSTANCE_DATA_MISSING({ instance: spec.name, dataDir: spec.dataDir })
            if (!canFailOver) throw err
            bootWithoutPrimary(spec, err)
            continue
          }
          if (state !== 'ready') {
            // Check before initdb, so a taken port leaves no data dir behind.
            if (!(await isPortFree(spec.port, spec.host))) throw PORT_IN_USE({ port: spec.port, what: 'postgres.port' })
            let password = await k.secrets.get(SUPERUSER_SECRET)
            if (!password) {
              password = generateSecret()
              await k.secrets.set(SUPERUSER_SECRET, password)
            }
            ctx.log.info({ instance: spec.name, leftover: state === 'initializing-leftover' }, 'initialising primary')
            await initInstance(spec, password)
          }
        }
        const sup = new InstanceSupervisor(spec, {
          log: ctx.log.child({ instance: spec.name }),
          events: ctx.events,
          restart: instances.syncRestartPolicy(cfg),
          onRestart: () => metrics.instanceRestarted(spec.name),
          role: m.role,
        })
        // Was a postmaster already serving this data dir (a kernel crash, re-adoption)? If our
        // start fails, only a postmaster this boot spawned may be stopped, never that one.
        const before = await readPostmasterPid(spec.dataDir).catch(() => undefined)
        // (One the kernel's first stage spawned a moment ago is this boot's own.)
        const wasRunning = before !== undefined && isProcessAliveSync(before.pid) && !isEarlyPid(before.pid)
        try {
          await sup.start()
        } catch (err) {
          if (!wasRunning) await stopInstance(spec, 'fast').catch(() => undefined)
          // A restored copy that will not start must not keep the flock down: it is listed as
          // stopped and `magflock instance remove` takes it away.
          if (m.role === 'standalone') {
            ctx.log.error({ instance: m.name, err }, 'standalone instance did not start; the flock boots without it')
            instances.add(spec, m.role, sup)
            continue
          }
          if (m.role === 'primary' && canFailOver) {
            bootWithoutPrimary(spec, err)
            continue
          }
          throw err
        }
        started.push(sup)
        instances.add(spec, m.role, sup)
      }
      await instances.saveTopology()
      const password = await k.secrets.get(SUPERUSER_SECRET)
      if (password) await writeSuperuserPgpass(k.layout.pgpass, { hosts: ['127.0.0.1', 'localhost'], user: cfg.postgres.superuser, password })
      // Early postmasters of instances this boot did not start (fenced meanwhile, …) go; the
      // next boot's first stage spawns what this one ran (src/postgres/early-start.ts).
      const discarded = await discardEarlyPostmasters()
      if (discarded.length > 0) ctx.log.warn({ instances: discarded }, 'stopped early-started postgres this boot did not use')
      await writeLaunchRecipe(k.layout.root, k.bins, k.runAs, instances.specFor(firstName, cfg.postgres.port, k.bins, k.runAs).settings?.ssl === true)
    } catch (err) {
      for (const s of started.reverse()) await s.stop({ keepRunning: s.status().adopted }).catch(() => {})
      await discardEarlyPostmasters().catch(() => [])
      throw err
    }
    return {
      async stop() {
        const mode = instances.keepRunningOnStop
        for (const s of instances.supervisors().reverse()) {
          await s.stop({ keepRunning: mode === true || (mode === 'adopted' && s.status().adopted) })
        }
      },
      health() {
        const all = instances.supervisors().map((s) => s.health())
        const bad = all.find((h) => !h.ready)
        return { live: all.every((h) => h.live), ready: !bad, detail: bad?.detail ?? `${all.length} instance(s) ready` }
      },
    }
  },
})

/** <state>/postgres-launch.json: what the kernel's first stage spawns next boot (rewritten only when it changes). */
async function writeLaunchRecipe(root: string, bins: PgBinaries, runAs: OsUser | undefined, ssl: boolean): Promise<void> {
  const recipe: LaunchRecipe = { postgres: postmasterBinary(bins), runAs: runAs ? { name: runAs.name, uid: runAs.uid, gid: runAs.gid, home: runAs.home } : null, ssl }
  const file = path.join(root, LAUNCH_RECIPE_FILE)
  const text = JSON.stringify(recipe, null, 2) + '\n'
  if ((await fsp.readFile(file, 'utf8').catch(() => undefined)) !== text) await writeJsonAtomic(file, recipe, 0o600)
}

/** Instance directories other than `primary` that hold a data dir and are not an interrupted add. */
async function otherInstanceDirs(instancesDir: string, firstName: string): Promise<string[]> {
  const names = await fsp.readdir(instancesDir).catch(() => [] as string[])
  const out: string[] = []
  for (const n of names.sort()) {
    if (n === firstName) continue
    const dir = path.join(instancesDir, n)
    const has = async (f: string) => fsp.access(path.join(dir, f)).then(() => true, () => false)
    if ((await has('data/PG_VERSION')) && !(await has('adding.json'))) out.push(n)
  }
  return out
}
