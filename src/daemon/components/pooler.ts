import { promises as fsp } from 'node:fs'
import type { Gauge } from 'prom-client'
import { idleHandle, type ComponentContext, type ComponentHandle } from '../../kernel/component.js'
import type { KernelServices } from '../../kernel/services.js'
import type { PoolerRuntime, PoolerStatus } from '../../pooler/runtime.js'
import { defineComponent } from '../component.js'
import { SUPERUSER_SECRET } from '../../secrets/names.js'
import { gaugeOn } from '../../telemetry/metrics.js'
import type { PrimaryTarget } from '../../replication/hooks.js'
import { adminCommand, nudge, showPools, showStats, withAdmin, type AdminTarget, type PoolRow, type StatsRow } from '../../pooler/admin.js'
import { poolerLayout, renderIni, renderUserlist, type PoolerLayout } from '../../pooler/ini.js'
import { adoptPooler, findPgbouncer, startPooler, stopOrphanPooler, stopPid, writePoolerFile, type PoolerProcess } from '../../pooler/process.js'
import { planReadOnly, readPrimaryView, routeConnect, syncLinks, type PrimaryView, type ReadOnlyCandidate, type ReadOnlyPlan } from '../../pooler/readonly.js'
import { socketDirFor } from '../../postgres/conf.js'
import path from 'node:path'
import '../../pooler/events.js'

/**
 * The `pooler` component: a managed PgBouncer in front of the primary (docs/pooling.md).
 *
 *   boot       write <state>/pooler/{pgbouncer.ini,userlist.txt}, adopt the running PgBouncer
 *              (pidfile) and RELOAD it, or start one as the Postgres OS user;
 *   switchover PAUSE before the old primary stops (clients wait, no error), repoint (rewrite
 *              the ini, RELOAD, RECONNECT) once the new primary accepts writes, RESUME at the end;
 *   failover   repoint + RECONNECT as soon as the new primary is promoted, so no server
 *              connection is left on the fenced old primary;
 *   every 2 s  repoint if the registry's primary differs from the one configured (a failover
 *              finished by another kernel), refresh the userlist from pg_authid, and export
 *              SHOW POOLS / SHOW STATS as metrics.
 * A PgBouncer that dies is restarted by the component's restart policy. PgBouncer outlives
 * the kernel like Postgres does (kernel stop or kill -9); `magflock down` stops it.
 */
export class ManagedPooler implements PoolerRuntime {
  target: PrimaryTarget
  proc: PoolerProcess | undefined
  paused = false
  lastRepoint: PoolerStatus['lastRepoint'] = null
  readOnly: ReadOnlyPlan | null = null
  private readOnlyDatabases: string[] = []
  private userlistText = ''
  private iniText = ''
  private chain: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly k: KernelServices,
    readonly layout: PoolerLayout,
    private readonly ctx: Pick<ComponentContext, 'log' | 'events'>,
  ) {
    this.target = this.registryPrimary() ?? { name: 'primary', host: '127.0.0.1', port: k.config().postgres.port }
  }

  get admin(): AdminTarget {
    const cfg = this.k.config()
    return { host: cfg.pooler.host, port: cfg.pooler.port, user: cfg.postgres.superuser, password: async () => (await this.k.secrets.get(SUPERUSER_SECRET)) ?? '' }
  }

  registryPrimary(): PrimaryTarget | undefined {
    const p = this.k.instances.members().find((m) => m.role === 'primary')
    return p ? { name: p.name, host: p.host, port: p.port } : undefined
  }

  /** Serialises repoints, pauses and refreshes: one admin action at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn)
    this.chain = next.catch(() => undefined)
    return next
  }

  /** The Unix socket directory of a local instance ('' for TCP): PgBouncer's shortest path to it. */
  private socketDirOf(name: string, host: string, port: number): string {
    const h = this.k.instances.get(name)
    if (!h || !['127.0.0.1', 'localhost', '::1'].includes(host)) return ''
    return socketDirFor(path.dirname(h.dataDir), port)
  }

  /** Which replicas serve `<db>.ro` now (streaming, within the lag bound), and the flock's databases. */
  private planReadOnly(view: PrimaryView): { plan: ReadOnlyPlan; databases: string[]; candidates: ReadOnlyCandidate[] } | undefined {
    const cfg = this.k.config().pooler
    if (!cfg.readOnly.enabled) return undefined
    const candidates: ReadOnlyCandidate[] = this.k.instances
      .members()
      .filter((m) => m.role === 'replica')
      .map((m) => ({ name: m.name, host: m.host, port: m.port, socketDir: this.socketDirOf(m.name, m.host, m.port), state: view.senders.get(m.name)?.state, lagBytes: view.senders.get(m.name)?.lagBytes }))
    return { plan: planReadOnly(candidates, { maxLagBytes: cfg.readOnly.maxLagBytes, layout: this.layout, vport: cfg.port }), databases: view.databases, candidates }
  }

  /**
   * Writes the ini and the userlist when they changed; true when either did. `quick` (a
   * repoint, on the failover's critical path): the new primary's address only, with the last
   * read-only plan and userlist; the next refresh (2 s) brings those up to date.
   */
  async writeConfig(quick = false): Promise<boolean> {
    const cfg = this.k.config()
    // One round trip to the primary per refresh; undefined when it is down (keep what PgBouncer has).
    const view = quick ? undefined : await this.k.instances.primary().connection().then(readPrimaryView).catch(() => undefined)
    const ro = view ? this.planReadOnly(view) : undefined
    if (ro) {
      await syncLinks(this.layout, ro.candidates, ro.plan, cfg.pooler.port, this.k.runAs)
      this.readOnly = ro.plan
      this.readOnlyDatabases = ro.databases
    } else if (quick && this.readOnly?.serving.includes(this.target.name)) {
      // The promoted replica is the primary now: reads go to it, guarded, until the next plan.
      this.readOnly = { serving: [], excluded: this.readOnly.excluded, route: { kind: 'primary' } }
    } else if (!cfg.pooler.readOnly.enabled) {
      this.readOnly = null
      this.readOnlyDatabases = []
    }
    const primary = { ...this.target, socketDir: this.socketDirOf(this.target.name, this.target.host, this.target.port) }
    const readOnly = this.readOnly ? { databases: this.readOnlyDatabases, connect: routeConnect(this.readOnly.route) } : undefined
    const ini = renderIni({ pooler: cfg.pooler, primary, readOnly, adminUser: cfg.postgres.superuser, layout: this.layout })
    let changed = false
    if (ini !== this.iniText) {
      await writePoolerFile(this.layout, this.layout.ini, ini, this.k.runAs)
      this.iniText = ini
      changed = true
    }
    const ul = view ? renderUserlist(view.roles) : undefined
    if (ul !== undefined && ul !== this.userlistText) {
      this.userlistText = ul
      await writePoolerFile(this.layout, this.layout.userlist, ul, this.k.runAs)
      changed = true
    }
    return changed
  }

  async start(): Promise<PoolerProcess> {
    const cfg = this.k.config()
    const listen = (ini: string) => ini.split('\n').filter((l) => /^listen_(addr|port) =/.test(l)).join('\n')
    const previous = await fsp.readFile(this.layout.ini, 'utf8').catch(() => '')
    await this.writeConfig()
    let adopted = await adoptPooler(this.layout)
    if (adopted && listen(previous) !== listen(this.iniText)) {
      // RELOAD cannot move the listening socket: a changed pooler.port/host needs a restart.
      this.ctx.log.info({ pid: adopted.pid }, 'pooler.port or pooler.host changed: restarting pgbouncer')
      adopted.detach()
      await stopPid(adopted.pid)
      adopted = undefined
    }
    if (adopted) {
      // The ini may have changed while no kernel watched (a failover finished at boot).
      await adminCommand(this.admin, 'RELOAD')
      // A kernel that died between PAUSE and RESUME must not leave clients waiting forever.
      await adminCommand(this.admin, 'RESUME').catch(() => undefined)
      this.proc = adopted
    } else {
      this.proc = await startPooler({ bin: findPgbouncer(), layout: this.layout, runAs: this.k.runAs, host: cfg.pooler.host, port: cfg.pooler.port })
    }
    return this.proc
  }

  pause(): Promise<void> {
    return this.serial(async () => {
      // Waits for transactions in flight to finish (transaction mode); new ones queue.
      this.paused = true
      await adminCommand(this.admin, 'PAUSE', 15_000)
    })
  }

  resume(): Promise<void> {
    return this.serial(async () => {
      await adminCommand(this.admin, 'RESUME')
      this.paused = false
    })
  }

  /** Points every pool at `to`: rewrite the ini, RELOAD, then RECONNECT (close old server connections). */
  repoint(to: PrimaryTarget, planned: boolean): Promise<void> {
    return this.serial(async () => {
      const from = this.target
      if (from.host === to.host && from.port === to.port && from.name === to.name) return
      this.target = { name: to.name, host: to.host, port: to.port }
      await this.writeConfig(true)
      await adminCommand(this.admin, 'RELOAD')
      await adminCommand(this.admin, 'RECONNECT')
      // After a failover the pool's last server login failed: let PgBouncer retry at once.
      if (!planned) void nudge(this.admin, [60, 60, 120]).catch(() => undefined)
      this.lastRepoint = { from: from.name, to: to.name, at: new Date().toISOString(), planned }
      this.ctx.log.info({ from: from.name, to: to.name, port: to.port, planned }, `pooler repointed from ${from.name} to ${to.name}`)
      this.ctx.events.publish('pooler.repointed', { from: from.name, to: to.name, port: to.port, planned })
    })
  }

  /** Refreshes the userlist (new roles, rotated passwords) and RELOADs when it changed. */
  refreshUsers(): Promise<void> {
    return this.serial(async () => {
      if (await this.writeConfig()) await adminCommand(this.admin, 'RELOAD')
    })
  }

  async observe(): Promise<{ pools: PoolRow[]; stats: StatsRow[] }> {
    return withAdmin(this.admin, async (c) => ({ pools: await showPools(c), stats: await showStats(c) }))
  }

  status(): PoolerStatus {
    const cfg = this.k.config().pooler
    return { pid: this.proc?.pid ?? 0, adopted: this.proc?.adopted ?? false, host: cfg.host, port: cfg.port, poolMode: cfg.poolMode, primary: this.target, paused: this.paused, lastRepoint: this.lastRepoint, readOnly: this.readOnly }
  }
}

function poolerGauges(ctx: ComponentContext): Record<string, Gauge> {
  const g = (name: string, help: string, labelNames: string[] = ['database', 'user']) => gaugeOn(ctx.metrics, { name, help, labelNames })
  return {
    up: g('magflock_pooler_up', '1 while the managed PgBouncer answers its admin console.', []),
    clientsActive: g('magflock_pooler_clients_active', 'Client connections linked to a server connection or idle, per pool.'),
    clientsWaiting: g('magflock_pooler_clients_waiting', 'Client connections waiting for a server connection, per pool.'),
    serversActive: g('magflock_pooler_servers_active', 'Server connections linked to a client, per pool.'),
    serversIdle: g('magflock_pooler_servers_idle', 'Idle server connections, per pool.'),
    maxWait: g('magflock_pooler_max_wait_seconds', 'Age of the oldest waiting client, per pool.'),
    xacts: g('magflock_pooler_transactions_total', 'Transactions pooled since PgBouncer started (SHOW STATS), per database.', ['database']),
    queries: g('magflock_pooler_queries_total', 'Queries pooled since PgBouncer started (SHOW STATS), per database.', ['database']),
    waitTime: g('magflock_pooler_client_wait_seconds_total', 'Time clients spent waiting for a server (SHOW STATS), per database.', ['database']),
  }
}

export const poolerComponent = defineComponent({
  name: 'pooler',
  requires: ['postgres'],
  // 5 in a minute: a kill -9 is survived; a taken port fails the boot in ~6 s, not a minute.
  restart: { policy: 'on-failure', maxRestarts: 5, windowMs: 60_000 },
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services
    const instances = k.instances
    const cfg = k.config().pooler
    if (!cfg.enabled) {
      // Turned off since the last boot: the PgBouncer that outlived that kernel goes too.
      if (await stopOrphanPooler(poolerLayout(k.layout.root))) ctx.log.info('pooler disabled: stopped the running pgbouncer')
      return idleHandle('disabled (pooler.enabled=false)')
    }
    const p = new ManagedPooler(k, poolerLayout(k.layout.root), ctx)
    const proc = await p.start()
    k.live.pooler = p
    ctx.log.info({ pid: proc.pid, adopted: proc.adopted, port: cfg.port, primary: p.target.name }, proc.adopted ? 'adopted running pgbouncer' : 'started pgbouncer')
    ctx.events.publish('pooler.started', { pid: proc.pid, port: cfg.port, adopted: proc.adopted, primary: p.target.name })
    const warn = (what: string) => (err: unknown) => ctx.log.warn({ err: (err as Error).message }, what)
    const unhook = ctx.services.primaryHooks.register({
      beforeSwitchover: () => p.pause(),
      primaryChanged: (to, how) => p.repoint(to, how.planned),
      afterSwitchover: async () => {
        // A switchover that failed before the promotion leaves the old primary: resume anyway.
        const now = p.registryPrimary()
        if (now) await p.repoint(now, true).catch(warn('pooler repoint failed'))
        await p.resume()
      },
    })
    let stopping = false
    let detail = `serving on ${cfg.host}:${cfg.port}, pointing at ${p.target.name}`
    void proc.exited.then(() => {
      if (stopping) return
      if (k.live.pooler === p) k.live.pooler = undefined
      const reason = `pgbouncer (pid ${proc.pid}) exited`
      ctx.events.publish('pooler.down', { pid: proc.pid, reason })
      ctx.fail(new Error(reason))
    })
    const gauges = poolerGauges(ctx)
    let ticking = false
    const timer = setInterval(() => {
      if (ticking || stopping) return
      ticking = true
      void (async () => {
        try {
          const want = p.registryPrimary()
          if (want && !p.paused && (want.name !== p.target.name || want.port !== p.target.port)) await p.repoint(want, false)
          if (!p.paused) await p.refreshUsers()
          const { pools, stats } = await p.observe()
          gauges.up!.set(1)
          for (const g of [gauges.clientsActive, gauges.clientsWaiting, gauges.serversActive, gauges.serversIdle, gauges.maxWait, gauges.xacts, gauges.queries, gauges.waitTime]) g!.reset()
          for (const r of pools) {
            const l = { database: r.database, user: r.user }
            gauges.clientsActive!.set(l, r.clientsActive)
            gauges.clientsWaiting!.set(l, r.clientsWaiting)
            gauges.serversActive!.set(l, r.serversActive)
            gauges.serversIdle!.set(l, r.serversIdle)
            gauges.maxWait!.set(l, r.maxWaitSeconds)
          }
          for (const s of stats) {
            gauges.xacts!.set({ database: s.database }, s.totalXactCount)
            gauges.queries!.set({ database: s.database }, s.totalQueryCount)
            gauges.waitTime!.set({ database: s.database }, s.totalWaitTimeUs / 1e6)
          }
          detail = `serving on ${cfg.host}:${cfg.port}, pointing at ${p.target.name}${p.paused ? ' (paused)' : ''}`
        } catch (err) {
          gauges.up!.set(0)
          detail = `admin console check failed: ${(err as Error).message}`
        } finally {
          ticking = false
        }
      })()
    }, 2_000)
    timer.unref()
    return {
      async stop() {
        stopping = true
        clearInterval(timer)
        unhook()
        if (k.live.pooler === p) k.live.pooler = undefined
        gauges.up!.set(0)
        const mode = instances.keepRunningOnStop
        const keep = mode === true || (mode === 'adopted' && proc.adopted)
        proc.detach()
        if (!keep) await stopPid(proc.pid)
      },
      health: () => ({ live: true, ready: !stopping, detail }),
    }
  },
})
