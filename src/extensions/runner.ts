import { existsSync, promises as fsp } from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import type { ExtInfo } from '../api/extensions.js'
import type { AuditWriter } from '../kernel/component.js'
import { decideRestart, type RestartPolicy } from '../kernel/restart-policy.js'
import type { ApiMetrics, Authorizer, TokenVerifier } from '../kernel/server.js'
import type { KernelEvents, KernelServices } from '../kernel/services.js'
import type { OsUser } from '../platform/os-user.js'
import { spawnLong } from '../platform/process.js'
import { redactor } from '../secrets/redact.js'
import { ExtensionBroker } from './broker.js'
import { ensureOsUser, memoryLimit, osUserName, type MemoryLimit } from './isolation.js'
import type { ExtEntry, ExtLayout } from './registry.js'

/**
 * One extension's process, supervised (docs/extensions.md, "Lifecycle"):
 *
 *   start    its OS user, its socket (a ControlServer that accepts only its fresh token, with
 *            the broker as authorizer), a memory cgroup, then
 *            sh -c 'echo $$ > cgroup.procs; exec setpriv --reuid … --pdeathsig KILL -- <entry>'
 *            as root, so the process is in its cgroup before it runs a line as its own user and
 *            dies with the kernel; cwd its state dir, an allow-listed environment plus
 *            MAGFLOCK_EXT_NAME / MAGFLOCK_EXT_SOCKET / MAGFLOCK_EXT_TOKEN;
 *   exit     non-zero or by a signal (crash, OOM kill): restarted by RESTART_POLICY
 *            (src/kernel/restart-policy.ts), then given up on (`failed`, audited, event);
 *            exit 0: stays `exited`;
 *   hang     with `heartbeatSeconds` in its manifest, no API call for that long → SIGKILL,
 *            counted as a crash;
 *   flood    more than FLOOD_REFUSALS rate-limited calls within 10 s → SIGKILL, a crash.
 */
export const RESTART_POLICY: RestartPolicy = { policy: 'on-failure', initialBackoffMs: 500, maxBackoffMs: 5_000, maxRestarts: 3, windowMs: 60_000 }
export const FLOOD_REFUSALS = 500
const STOP_GRACE_MS = 5_000

/** An extension's API socket: a ControlServer over the kernel's routes, as the daemon builds it. */
export interface ExtApiServer {
  listen(): Promise<void>
  close(): Promise<void>
}

export type ExtApiFactory = (o: { socketPath: string; tokens: TokenVerifier; authorize: Authorizer; audit: AuditWriter; metrics: ApiMetrics; log: Logger }) => Promise<ExtApiServer>

export interface RunnerDeps {
  k: KernelServices
  layout: ExtLayout
  /** Opens an extension's own API socket over the kernel's routes (the composition root owns them). */
  serve: ExtApiFactory
  log: Logger
  audit: AuditWriter
  events: KernelEvents
  apiMetrics: ApiMetrics
  entry(): ExtEntry | undefined
}

type Child = ReturnType<typeof spawnLong>

export class ExtRunner {
  state: ExtInfo['state'] = 'disabled'
  pid: number | null = null
  restarts = 0
  lastExit: ExtInfo['lastExit'] = null
  memoryKind: string | null = null
  private restartTimes: number[] = []
  private child: Child | undefined
  private exited: Promise<void> | undefined
  private server: ExtApiServer | undefined
  private mem: MemoryLimit | undefined
  private stopping = false
  private timer: NodeJS.Timeout | undefined
  private watchdog: NodeJS.Timeout | undefined
  private lastCall = Date.now()
  private refusals: number[] = []
  private killReason: string | undefined
  readonly broker: ExtensionBroker

  constructor(
    readonly name: string,
    private readonly d: RunnerDeps,
  ) {
    this.broker = new ExtensionBroker({
      name,
      grants: () => d.entry()?.grants ?? [],
      onCall: () => (this.lastCall = Date.now()),
      onRateLimited: () => this.countRefusal(),
    })
  }

  get detail(): string {
    switch (this.state) {
      case 'running':
        return `running as ${osUserName(this.name)} (pid ${this.pid})`
      case 'failed':
        return `gave up after ${this.restarts} restarts: ${this.lastExit?.reason ?? 'unknown'}`
      case 'restarting':
        return `restarting: ${this.lastExit?.reason ?? ''}`
      case 'exited':
        return 'exited with status 0 (not restarted); `magflock ext enable` starts it again'
      default:
        return this.state
    }
  }

  /** Starts the process (state → running); a failure to start is treated like a crash. */
  async start(): Promise<void> {
    this.stopping = false
    this.restartTimes = []
    await this.spawn()
  }

  private async spawn(): Promise<void> {
    const entry = this.d.entry()
    if (!entry || this.stopping) return
    this.state = 'starting'
    try {
      await this.launch(entry)
    } catch (err) {
      this.d.log.error({ extension: this.name, err: redactor.scrub(String((err as Error)?.message ?? err)) }, 'extension failed to start')
      await this.teardown()
      this.onExit(null, null, `failed to start: ${(err as Error)?.message ?? String(err)}`)
    }
  }

  private async launch(entry: ExtEntry): Promise<void> {
    const { layout } = this.d
    const user = await ensureOsUser(this.name)
    const token = this.broker.issue()
    redactor.add(token)
    const socket = layout.socket(this.name)
    this.server = await this.d.serve({
      socketPath: socket,
      tokens: this.broker,
      authorize: this.broker.authorize,
      audit: this.d.audit,
      metrics: this.d.apiMetrics,
      log: this.d.log.child({ extension: this.name }),
    })
    await this.server.listen()
    // Its socket, its user: nobody else (other extensions included) can connect.
    await fsp.chown(socket, user.uid, user.gid)
    this.mem = await memoryLimit(this.name, entry.manifest.memoryMb)
    this.memoryKind = this.mem.kind
    const argv = resolveEntry(entry.manifest.entry, layout.packageDir(this.name))
    const stateDir = layout.stateDir(this.name)
    const logFile = await fsp.open(layout.log(this.name), 'a', 0o600)
    try {
      await fsp.appendFile(logFile, `--- ${new Date().toISOString()} starting ${entry.name} ${entry.version} (memory limit ${entry.manifest.memoryMb} MiB, ${this.mem.kind})\n`)
      const [bin, args] = wrap(argv, user, this.mem.procsFile)
      const env = {
        HOME: stateDir,
        USER: user.name,
        LOGNAME: user.name,
        MAGFLOCK_EXT_NAME: this.name,
        MAGFLOCK_EXT_SOCKET: socket,
        MAGFLOCK_EXT_TOKEN: token,
        // A second wall for Node extensions; the cgroup is the real one where there is one.
        NODE_OPTIONS: `--max-old-space-size=${Math.max(16, Math.floor(entry.manifest.memoryMb * 0.75))}`,
      }
      const child = spawnLong(bin, args, { env, cwd: stateDir, detached: true, stdio: ['ignore', logFile.fd, logFile.fd] as never })
      this.child = child
      this.pid = child.pid ?? null
      this.lastCall = Date.now()
      this.refusals = []
      this.killReason = undefined
      this.state = 'running'
      this.exited = child.then(
        (r) => this.handleExit(r.exitCode ?? null, r.signal ?? null),
        (e: { exitCode?: number; signal?: string }) => this.handleExit(e.exitCode ?? null, e.signal ?? null),
      )
      const hb = entry.manifest.heartbeatSeconds
      this.watchdog = setInterval(() => {
        if (hb !== undefined && Date.now() - this.lastCall > hb * 1000) this.kill(`hung: no API call for ${hb} s`)
      }, 1000)
      this.watchdog.unref()
      this.d.log.info({ extension: this.name, pid: this.pid, memoryLimit: this.mem.kind }, 'extension started')
    } finally {
      await logFile.close()
    }
  }

  private countRefusal(): void {
    const now = Date.now()
    this.refusals.push(now)
    while (this.refusals.length > 0 && now - this.refusals[0]! > 10_000) this.refusals.shift()
    if (this.refusals.length > FLOOD_REFUSALS) this.kill(`flooded the API (${this.refusals.length} calls over the rate limit within 10 s)`)
  }

  /** Kills the process group; its exit then goes through the restart policy as a crash. */
  kill(reason: string): void {
    if (this.pid === null || this.killReason !== undefined) return
    this.killReason = reason
    this.d.log.warn({ extension: this.name, pid: this.pid, reason }, 'killing extension')
    killGroup(this.pid, 'SIGKILL')
  }

  private async handleExit(code: number | null, signal: string | null): Promise<void> {
    this.child = undefined
    this.pid = null
    // Its hooks die with the process: the next run registers again.
    this.d.k.hooks.dropExtension(this.name)
    await this.teardown()
    const reason = this.killReason ?? (signal ? `killed by ${signal}${signal === 'SIGKILL' && this.memoryKind !== 'node-heap' ? ' (out of memory?)' : ''}` : `exited with status ${code}`)
    this.onExit(code, signal, reason)
  }

  private onExit(code: number | null, signal: string | null, reason: string): void {
    this.lastExit = { at: new Date().toISOString(), code, signal, reason }
    if (this.stopping) {
      this.state = 'disabled'
      return
    }
    const failed = code !== 0 || signal !== null || this.killReason !== undefined
    const decision = decideRestart(RESTART_POLICY, { failed }, this.restartTimes, Date.now())
    this.d.log.warn({ extension: this.name, code, signal, reason, decision: decision.action }, `extension ${this.name} ${reason}: ${decision.action} (${decision.reason})`)
    if (decision.action === 'restart') {
      this.state = 'restarting'
      this.restartTimes.push(Date.now())
      this.restarts++
      this.timer = setTimeout(() => void this.spawn(), decision.delayMs)
      return
    }
    if (decision.action === 'give-up') {
      this.state = 'failed'
      this.d.events.publish('extension.failed', { extension: this.name, reason: `${reason}; ${decision.reason}` })
      void this.d.audit
        .append({ actor: 'kernel', action: 'ext.gave_up', target: this.name, result: 'error', details: { reason: `${reason}; ${decision.reason}` } })
        .catch(() => undefined)
      return
    }
    this.state = 'exited'
  }

  private async teardown(): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog)
    this.watchdog = undefined
    this.broker.revokeToken()
    const s = this.server
    this.server = undefined
    await s?.close().catch(() => undefined)
    const m = this.mem
    this.mem = undefined
    await m?.remove().catch(() => undefined)
  }

  /** Stops the process (SIGTERM, then SIGKILL after a grace period) and cancels restarts. */
  async stop(): Promise<void> {
    this.stopping = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    const pid = this.pid
    if (pid !== null && this.child) {
      killGroup(pid, 'SIGTERM')
      const t = setTimeout(() => killGroup(pid, 'SIGKILL'), STOP_GRACE_MS)
      await this.exited
      clearTimeout(t)
    } else {
      await this.teardown()
    }
    this.state = 'disabled'
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

/** `node` is the kernel's Node; `./x` is a file of the package. */
export function resolveEntry(entry: readonly string[], packageDir: string): string[] {
  return entry.map((w, i) => (i === 0 && w === 'node' ? process.execPath : w.startsWith('./') ? path.join(packageDir, w.slice(2)) : w))
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? 'setpriv'

/** argv run as root that joins the cgroup, drops to the extension's user and execs the entry. */
function wrap(argv: string[], user: OsUser, procsFile: string | undefined): [string, string[]] {
  const drop = [SETPRIV, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--pdeathsig', 'KILL', '--', ...argv]
  if (!procsFile) return [drop[0]!, drop.slice(1)]
  return ['/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procsFile, ...drop]]
}
