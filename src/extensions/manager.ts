import { promises as fsp } from 'node:fs'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { z } from 'zod'
import type { ExtInfo } from '../api/extensions.js'
import type { AuditWriter } from '../kernel/component.js'
import { registerEventType } from '../kernel/events.js'
import type { ApiMetrics } from '../kernel/server.js'
import type { KernelEvents, KernelServices } from '../kernel/services.js'
import { dropRole, revokeDatabase } from './db.js'
import { EXT_CAPABILITY_NOT_REQUESTED, EXT_EXISTS, EXT_GRANT_MISSING } from './errors.js'
import { ensureOsUser, installFiles, osUserName, removeOsUser, requireRoot, sweepCgroups } from './isolation.js'
import { checkExtName, parseCapability, type Manifest } from './manifest.js'
import { ExtRegistry, extLayout, type ExtEntry, type ExtLayout } from './registry.js'
import { ExtRunner, type ExtApiFactory } from './runner.js'
import { resolveSource } from './source.js'

registerEventType('extension.failed', z.object({ extension: z.string(), reason: z.string() }))

/**
 * The extension plane of one kernel: the registry, one ExtRunner per enabled extension, and
 * the operations behind `magflock ext …` (src/daemon/routes/extensions.ts). Installing grants
 * nothing unless the caller names the grants; every operation runs through an admin-only,
 * audited route.
 */
export interface ManagerDeps {
  k: KernelServices
  serve: ExtApiFactory
  /** The ids of the kernel's routes (a grant must name one). */
  routeIds: () => Promise<string[]>
  log: Logger
  audit: AuditWriter
  events: KernelEvents
  metrics: Registry
}

export class ExtensionManager {
  readonly layout: ExtLayout
  readonly registry: ExtRegistry
  private readonly runners = new Map<string, ExtRunner>()
  private readonly apiMetrics: ApiMetrics

  constructor(private readonly d: ManagerDeps) {
    this.layout = extLayout(d.k.layout.root)
    this.registry = new ExtRegistry(this.layout.registry)
    const counter =
      (d.metrics.getSingleMetric('magflock_extension_api_requests_total') as Counter<'route' | 'status'> | undefined) ??
      new Counter({ name: 'magflock_extension_api_requests_total', help: 'Control API calls made by extensions, by route and HTTP status.', labelNames: ['route', 'status'], registers: [d.metrics] })
    this.apiMetrics = { apiRequest: (route, _m, status) => counter.inc({ route, status: String(status) }) }
  }

  private loadError: string | undefined

  async start(): Promise<void> {
    const swept = await sweepCgroups().catch(() => [])
    if (swept.length > 0) this.d.log.info({ cgroups: swept }, 'removed memory cgroups a killed kernel left')
    let entries: ExtEntry[]
    try {
      entries = await this.registry.load()
    } catch (err) {
      // A damaged registry must not stop the kernel (and the databases) from booting: no
      // extension runs, and status says why.
      this.loadError = `cannot read ${this.layout.registry}: ${(err as Error).message.slice(0, 200)}`
      this.d.log.error({ err: this.loadError }, 'extensions not started')
      return
    }
    for (const e of entries) {
      if (!e.enabled) continue
      // Isolation needs root; a kernel that is not root keeps them disabled (status says why).
      try {
        requireRoot()
      } catch (err) {
        this.d.log.warn({ extension: e.name, err: (err as Error).message }, 'extension not started')
        continue
      }
      await this.runner(e.name).start()
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.stop()))
  }

  health(): { live: boolean; ready: boolean; detail: string } {
    if (this.loadError) return { live: true, ready: true, detail: `no extension started: ${this.loadError}` }
    const list = this.registry.list()
    const running = [...this.runners.values()].filter((r) => r.state === 'running').length
    const failed = [...this.runners.values()].filter((r) => r.state === 'failed').map((r) => r.name)
    const detail = list.length === 0 ? 'no extensions installed' : `${running} of ${list.filter((e) => e.enabled).length} enabled extensions running${failed.length ? `; gave up on ${failed.join(', ')}` : ''}`
    return { live: true, ready: true, detail }
  }

  runner(name: string): ExtRunner {
    let r = this.runners.get(name)
    if (!r) {
      r = new ExtRunner(name, { k: this.d.k, layout: this.layout, serve: this.d.serve, log: this.d.log, audit: this.d.audit, events: this.d.events, apiMetrics: this.apiMetrics, entry: () => this.registry.find(name) })
      this.runners.set(name, r)
    }
    return r
  }

  info(e: ExtEntry): ExtInfo {
    const r = this.runners.get(e.name)
    const state = r?.state ?? 'disabled'
    return {
      name: e.name,
      version: e.version,
      description: e.manifest.description ?? null,
      source: e.source,
      installedAt: e.installedAt,
      enabled: e.enabled,
      requested: e.manifest.capabilities,
      grants: e.grants,
      state: !e.enabled && state !== 'disabled' ? state : state,
      pid: r?.pid ?? null,
      restarts: r?.restarts ?? 0,
      osUser: osUserName(e.name),
      memoryMb: e.manifest.memoryMb,
      memoryLimit: r?.memoryKind ?? null,
      lastExit: r?.lastExit ?? null,
      detail: e.enabled ? (r?.detail ?? 'enabled, not started') : 'disabled; `magflock ext enable` starts it',
    }
  }

  async list(): Promise<ExtInfo[]> {
    return (await this.registry.load()).map((e) => this.info(e))
  }

  /** Checks a capability string and that the manifest requests it. */
  private async checkGrant(name: string, manifest: Manifest, capability: string): Promise<void> {
    const known = new Set(await this.d.routeIds())
    parseCapability(capability, known)
    if (!manifest.capabilities.includes(capability)) throw EXT_CAPABILITY_NOT_REQUESTED({ name, capability })
  }

  async install(input: { source: string; grants: string[]; enable: boolean }, audit: Record<string, unknown>): Promise<ExtInfo> {
    requireRoot()
    await this.registry.load()
    const src = await resolveSource(input.source, (msg, f) => this.d.log.debug(f, msg))
    try {
      const m = src.manifest
      audit.extension = m.name
      audit.version = m.version
      audit.requested = m.capabilities
      const existing = this.registry.find(m.name)
      if (existing) throw EXT_EXISTS({ name: m.name, version: existing.version })
      for (const c of m.capabilities) parseCapability(c) // a manifest asking for the impossible is refused whole
      const grants = [...new Set(input.grants)]
      for (const g of grants) await this.checkGrant(m.name, m, g)
      audit.grants = grants
      const user = await ensureOsUser(m.name)
      await installFiles(this.layout, m.name, src.dir, user)
      await this.applyStateDir(m.name, grants.includes('state:dir'))
      await this.registry.mutate((list) => {
        list.push({ name: m.name, version: m.version, manifest: m, source: input.source, installedAt: new Date().toISOString(), enabled: false, grants })
      })
    } finally {
      await src.cleanup()
    }
    if (input.enable) return this.enable(src.manifest.name)
    return this.info(this.registry.get(src.manifest.name))
  }

  async enable(name: string): Promise<ExtInfo> {
    requireRoot()
    await this.registry.load()
    this.registry.get(name)
    await this.registry.mutate((list) => {
      list.find((e) => e.name === name)!.enabled = true
    })
    const r = this.runner(name)
    if (r.state !== 'running' && r.state !== 'starting') {
      await r.stop()
      await r.start()
    }
    return this.info(this.registry.get(name))
  }

  async disable(name: string): Promise<ExtInfo> {
    await this.registry.load()
    this.registry.get(name)
    await this.registry.mutate((list) => {
      list.find((e) => e.name === name)!.enabled = false
    })
    await this.runners.get(name)?.stop()
    this.d.k.hooks.dropExtension(name)
    return this.info(this.registry.get(name))
  }

  async grant(name: string, capability: string): Promise<ExtInfo> {
    await this.registry.load()
    const e = this.registry.get(name)
    await this.checkGrant(name, e.manifest, capability)
    await this.registry.mutate((list) => {
      const x = list.find((y) => y.name === name)!
      if (!x.grants.includes(capability)) x.grants.push(capability)
    })
    if (capability === 'state:dir') await this.applyStateDir(name, true)
    return this.info(this.registry.get(name))
  }

  async revoke(name: string, capability: string): Promise<ExtInfo> {
    await this.registry.load()
    const e = this.registry.get(name)
    if (!e.grants.includes(capability)) throw EXT_GRANT_MISSING({ name, capability })
    await this.registry.mutate((list) => {
      const x = list.find((y) => y.name === name)!
      x.grants = x.grants.filter((g) => g !== capability)
    })
    const cap = parseCapability(capability)
    if (cap.kind === 'state:dir') await this.applyStateDir(name, false)
    if (cap.kind === 'db:connect') {
      const still = this.registry.get(name).grants.some((g) => g.startsWith(`db:connect:${cap.database}:`))
      if (!still) await revokeDatabase(this.d.k, name, cap.database)
    }
    return this.info(this.registry.get(name))
  }

  async logs(name: string, lines: number): Promise<string[]> {
    await this.registry.load()
    this.registry.get(name)
    const text = await fsp.readFile(this.layout.log(name), 'utf8').catch(() => '')
    return text.split('\n').filter(Boolean).slice(-lines).map((l) => l.slice(0, 4000))
  }

  async remove(name: string): Promise<{ name: string; removed: boolean; osUserRemoved: boolean }> {
    await this.registry.load()
    const e = this.registry.get(name)
    await this.runners.get(name)?.stop()
    this.runners.delete(name)
    this.d.k.hooks.dropExtension(name)
    const dbs = [...new Set(e.grants.map((g) => /^db:connect:([^:]+):/.exec(g)?.[1]).filter((x): x is string => !!x))]
    await dropRole(this.d.k, name, dbs).catch((err) => this.d.log.warn({ extension: name, err: (err as Error).message }, 'could not drop the extension database role'))
    await fsp.rm(this.layout.dir(name), { recursive: true, force: true })
    await fsp.rm(this.layout.socket(name), { force: true })
    await this.registry.mutate((list) => {
      const i = list.findIndex((x) => x.name === name)
      if (i >= 0) list.splice(i, 1)
    })
    await removeOsUser(name)
    return { name, removed: true, osUserRemoved: true }
  }

  /** state:dir granted: state/ is its own (0700); not granted: root's, so it cannot write there. */
  private async applyStateDir(name: string, grantedDir: boolean): Promise<void> {
    const dir = this.layout.stateDir(name)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    if (grantedDir) {
      const user = await ensureOsUser(name)
      await fsp.chown(dir, user.uid, user.gid)
      await fsp.chmod(dir, 0o700)
    } else {
      await fsp.chown(dir, 0, 0)
      await fsp.chmod(dir, 0o711)
    }
  }

  /** The config namespace `extensions.<name>`, checked against the manifest. */
  configOf(name: string): Record<string, unknown> {
    checkExtName(name)
    return this.d.k.config().extensions[name] ?? {}
  }
}

const managers = new WeakMap<KernelServices, ExtensionManager>()

/** The extension manager of the kernel these services belong to (set by the component). */
export function extensionsOf(k: KernelServices): ExtensionManager | undefined {
  return managers.get(k)
}

export function attachManager(k: KernelServices, m: ExtensionManager | undefined): void {
  if (m) managers.set(k, m)
  else managers.delete(k)
}
