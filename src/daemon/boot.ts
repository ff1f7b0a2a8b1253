import { promises as fsp } from 'node:fs'
import type { Logger } from 'pino'
import { isMagflockError, INTERNAL, type MagflockError } from '../errors/index.js'
import type { MagflockConfig } from '../config/schema.js'
import { loadConfig } from '../config/load.js'
import { openSecretStore } from '../secrets/store.js'
import { migrateLegacySuperuserPassword } from '../secrets/migrate.js'
import { redactor } from '../secrets/redact.js'
import { writeJsonAtomic } from '../platform/fs.js'
import { postgresRunAs, prefetchOsUser } from '../platform/os-user.js'
import { stateLayout } from '../platform/paths.js'
import { findPgBinaries, prefetchPgBinaries } from '../postgres/binaries.js'
import { discardEarlyPostmasters } from '../postgres/early-start.js'
import { createLogger } from '../telemetry/logger.js'
import { createKernelMetrics } from '../telemetry/metrics.js'
import { AuditLog, auditFailureCounter, auditPathsOf, storeKeyring } from '../kernel/audit.js'
import { EventBus } from '../kernel/event-bus.js'
import { ComponentManager } from '../kernel/lifecycle.js'
import { acquireKernelLock } from '../kernel/lock.js'
import { InMemoryLocks } from '../kernel/locks.js'
import { FlockInstances } from './instances.js'
import { daemonComponents } from './components/index.js'
import { PrimaryHooks } from '../replication/hooks.js'
import { ControlServer } from '../kernel/server.js'
import { removeKernelInfo, writeKernelInfo } from '../kernel/state.js'
import { TokenStore } from '../kernel/tokens.js'
import type { DaemonServices, RouteServices, RunningKernel } from './services.js'
import { VERSION } from '../kernel/version.js'
import { registerEventType } from '../kernel/events.js'
import { backupEventSchemas } from '../backup/events.js'
import { replicationEventSchemas } from '../replication/events.js'
import { cleanLeftovers } from './orphans.js'
import { realtimeEventSchemas } from '../realtime/events.js'
import { prepareNodeTls } from '../tls/boot.js'
import { startTlsApiListener } from '../tls/api-listener.js'
import { hookEventSchemas } from '../hooks/events.js'
import { HookRegistry } from '../hooks/registry.js'
import { EventJournal } from '../kernel/event-journal.js'
import { readClusterSettings, withNodeListen } from '../cluster/node-settings.js'

/** Domain event types, registered with the bus's schema registry before anything publishes. */
for (const [type, schema] of Object.entries({ ...backupEventSchemas, ...replicationEventSchemas, ...realtimeEventSchemas, ...hookEventSchemas })) registerEventType(type, schema)

export interface DaemonOptions {
  stateDir: string
  projectDir: string
  env?: string | undefined
  /** Also log to stdout (kernel start --foreground). */
  foreground?: boolean
}

export type { RunningKernel } from './services.js'

/**
 * Boots a kernel for one state directory: lock → config → logging, metrics, events, audit,
 * tokens, vault → components in dependency order → control socket → kernel.json.
 * Any failure before serving stops what started, in reverse, and leaves
 * <state>/kernel.start-error.json for the launcher (`magflock up`) to report.
 */
export async function startKernel(opts: DaemonOptions): Promise<RunningKernel> {
  const layout = stateLayout(opts.stateDir)
  // 0711: the postgres OS user must traverse to instances/<name>/data (its own 0700 dir)
  // without being able to list or read the kernel's files (tokens, vault: all 0600).
  await fsp.mkdir(layout.root, { recursive: true, mode: 0o711 })
  await fsp.chmod(layout.root, 0o711)
  const startErrorFile = `${layout.root}/kernel.start-error.json`
  await fsp.rm(startErrorFile, { force: true })
  const undo: Array<() => Promise<void>> = []
  // Discovery's execs (pg_config, postgres --version, getent) run while config, vault and audit load.
  const discovery = prefetchPgBinaries()
  let log: Logger | undefined
  let releaseLock: () => Promise<void> = async () => {}
  try {
    // Inside the try: "another kernel holds the lock" is recorded for the launcher like any
    // other boot failure (with this pid, so a concurrent `up` never reports it as its own).
    releaseLock = await acquireKernelLock(layout.lockFile, layout.root)
    undo.push(releaseLock)
    const loaded = await loadConfig({ cwd: opts.projectDir, env: opts.env, environ: process.env })
    // A node of a multi-host flock (cluster.json) also listens on its node address.
    const clusterNode = await readClusterSettings(layout.root)
    let config: MagflockConfig = withNodeListen(loaded.config, clusterNode)
    const env = loaded.env
    log = createLogger({
      file: layout.kernelLog,
      level: config.kernel.logLevel,
      base: { flock: config.flock, env },
      stdout: opts.foreground ?? false,
    })
    // A kernel killed mid-command leaves helpers, half backups and passfiles: clean them first.
    const leftovers = await cleanLeftovers(layout)
    if (leftovers.killed.length > 0 || leftovers.backupsRemoved.length > 0) {
      log.warn({ killed: leftovers.killed, backupsRemoved: leftovers.backupsRemoved }, 'cleaned up after a kernel that was killed mid-command')
    }
    const metrics = createKernelMetrics()
    const events = new EventBus({ metrics, log })
    // First subscriber: every accepted event gets its seq and is on disk before anyone sees it.
    const ev = config.kernel.events
    const journal = new EventJournal({ dir: `${layout.root}/events`, log, segmentBytes: ev.journalSegmentBytes, segments: ev.journalSegments })
    events.subscribe((e) => journal.append(e))
    undo.push(async () => journal.close())
    const tokens = new TokenStore(layout.tokens)
    const secrets = await openSecretStore({ layout, environ: process.env })
    // Fail fast on a store that cannot be read (E_VAULT_MISSING, E_VAULT_WRONG_KEY, …), before
    // any component retries against it.
    await secrets.list()
    // The chain key lives in the secret store, never beside the log; the anchor outside audit/.
    const audit = new AuditLog(auditPathsOf(layout), { keyring: storeKeyring(secrets), onWriteFailure: auditFailureCounter(metrics.registry) })
    await migrateLegacySuperuserPassword(layout, secrets)
    await Promise.all([discovery, prefetchOsUser(config.postgres.osUser)])
    const bins = findPgBinaries(config.postgres.binDir)
    const runAs = postgresRunAs(config.postgres.osUser)
    const nodeTls = await prepareNodeTls({ stateRoot: layout.root, projectDir: opts.projectDir, config, secrets, runAs, log })
    const locks = new InMemoryLocks()
    const instances = new FlockInstances(layout, secrets, () => config, log)
    const hooks = new HookRegistry({ events, audit, log })
    hooks.observeReplication()

    const services: DaemonServices = {
      layout,
      projectDir: opts.projectDir,
      env,
      config: () => config,
      log,
      events,
      metrics: metrics.registry,
      audit,
      bins,
      runAs,
      secrets,
      instances,
      locks,
      journal,
      hooks,
      kernelMetrics: metrics,
      live: {},
      primaryHooks: new PrimaryHooks(),
    }
    const components = new ComponentManager({ log, events, metrics, audit })
    for (const c of daemonComponents(config, { clusterNode: clusterNode !== undefined })) components.register(c, services)
    // The route handlers pull in every domain (backups, replication, migrations, databases):
    // they load while the components boot (Postgres starts in its own process meanwhile),
    // not before. In the bundled kernel (scripts/build-kernel.mjs) they are their own chunk.
    const routesLoading = import('./routes/index.js')
    routesLoading.catch(() => undefined)

    await components.startAll()
    undo.unshift(() => components.stopAll())
    // The admin token once the flock is up, not before: a failed `up` leaves no token files.
    const tokensExisted = await fsp.stat(layout.tokens).then(() => true, () => false)
    const admin = await tokens.ensureAdmin(layout.adminToken)
    if (admin.created) {
      undo.unshift(async () => {
        await fsp.rm(layout.adminToken, { force: true })
        if (!tokensExisted) await fsp.rm(layout.tokens, { force: true })
      })
    }

    const startedAt = new Date()
    let closeApiTls: () => Promise<void> = async () => {}
    let resolveStopped!: () => void
    const stopped = new Promise<void>((r) => (resolveStopped = r))
    let shuttingDown: Promise<void> | undefined

    const kernel: RunningKernel = {
      services,
      components,
      instances,
      tokens,
      startedAt,
      stopped,
      shutdown({ keepPostgres, reason }) {
        shuttingDown ??= (async () => {
          log?.info({ reason, keepPostgres }, 'kernel stopping')
          events.publish('kernel.stopping', { reason })
          instances.keepRunningOnStop = keepPostgres
          await server.close().catch(() => {})
          await closeApiTls().catch(() => {})
          await components.stopAll()
          await removeKernelInfo(layout)
          journal.close()
          await releaseLock()
          log?.info('kernel stopped')
          log?.flush?.()
          resolveStopped()
        })()
        return shuttingDown
      },
      async reload() {
        const { reloadConfig } = await import('../config/reload.js')
        const res = await reloadConfig(config, () => loadConfig({ cwd: opts.projectDir, env, environ: process.env }))
        config = withNodeListen(res.next, clusterNode)
        if (log) log.level = config.kernel.logLevel
        await instances.applyLiveConfig(config, res.applied)
        events.publish('config.reloaded', { applied: res.applied, restartRequired: res.restartRequired })
        log?.info({ applied: res.applied, restartRequired: res.restartRequired }, 'config reloaded')
        return { applied: res.applied, restartRequired: res.restartRequired, env }
      },
    }

    const routeServices: RouteServices = Object.assign(services, { kernel })
    const server = new ControlServer<RouteServices>({
      socketPath: layout.socket,
      routes: (await routesLoading).allRoutes,
      tokens,
      services: routeServices,
      audit,
      metrics,
      log,
    })
    await server.listen()
    undo.unshift(() => server.close())
    if (config.api.listen && nodeTls) {
      const listener = await startTlsApiListener({ listen: config.api.listen, tls: nodeTls, server, log })
      undo.unshift(() => listener.close())
      closeApiTls = () => listener.close()
    }

    const metricsUrl = config.metrics.enabled ? `http://127.0.0.1:${config.metrics.port}/metrics` : null
    await writeKernelInfo(layout, {
      pid: process.pid,
      socket: layout.socket,
      version: VERSION,
      startedAt: startedAt.toISOString(),
      env,
      projectDir: opts.projectDir,
      metricsUrl,
    })
    events.publish('kernel.started', { pid: process.pid, version: VERSION, env })
    log.info({ pid: process.pid, socket: layout.socket, env }, 'kernel serving')
    return kernel
  } catch (err) {
    // A component that failed to boot wraps its cause; the operator needs the cause
    // (E_PORT_IN_USE, E_BINARY_MISSING, …) with its own hint, not the wrapper.
    const cause = (err as { cause?: unknown })?.cause
    const root = isMagflockError(err) && err.code === 'E_COMPONENT_START_FAILED' && isMagflockError(cause) ? cause : err
    const e: MagflockError = isMagflockError(root) ? root : INTERNAL({ message: root instanceof Error ? root.message : String(root) }, { cause: root })
    log?.error({ code: e.code, err: redactor.scrub(String((err as Error)?.stack ?? err)) }, 'kernel failed to start')
    for (const u of undo) await u().catch(() => {})
    // Postmasters the first stage spawned and no component took stop before `up` hears of the failure.
    await discardEarlyPostmasters().catch(() => [])
    await writeJsonAtomic(startErrorFile, { pid: process.pid, error: e.toWire() }).catch(() => {})
    throw e
  }
}
