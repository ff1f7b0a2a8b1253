import type { Logger } from 'pino'
import type { KernelMetrics } from '../telemetry/metrics.js'
import { redactString } from '../telemetry/redact.js'
import type {
  AuditWriter,
  ComponentContext,
  ComponentDef,
  ComponentHandle,
  ComponentHealth,
  ComponentState,
  EventPublisher,
} from './component.js'
import { COMPONENT_DUPLICATE, COMPONENT_START_FAILED } from './errors.js'
import { bootOrder } from './graph.js'
import { decideRestart } from './restart-policy.js'

/**
 * Runs the kernel's components: boots them in dependency order, stops them in reverse,
 * restarts them by their policy (src/kernel/restart-policy.ts decides; this class acts).
 *
 * Contracts:
 *  - `startAll()` starts each component once its dependencies are running. A `start()` that
 *    rejects is retried by the restart policy with backoff; when the policy gives up, the
 *    component is `failed` (event component.failed), everything already started is stopped in
 *    reverse, and startAll rejects with E_COMPONENT_START_FAILED naming it and the cause.
 *  - `ctx.fail(err)` from a running component: its handle is stopped, then it is restarted
 *    after the policy's delay, or marked `failed` when the policy gives up or says never.
 *    Its dependents keep running; they see the dependency through their own health checks.
 *  - `stopAll()` never throws. It cancels pending restarts, waits for in-flight starts, and
 *    stops components in reverse boot order, each bounded by its stopTimeoutMs (default
 *    30 s) — a stop that overruns is logged and abandoned so shutdown always finishes.
 *  - Every state change publishes `component.state {component, from, to}` and updates
 *    magflock_component_state.
 *
 * Time comes from `now`/`sleep` so tests move a fake clock instead of waiting.
 */
export const DEFAULT_STOP_TIMEOUT_MS = 30_000
export const HEALTH_TIMEOUT_MS = 5_000

export interface ComponentStatus {
  name: string
  state: ComponentState
  restarts: number
  healthy: boolean
  detail?: string
  lastError?: string
}

export interface ComponentManagerOptions {
  log: Logger
  events: EventPublisher
  metrics: KernelMetrics
  audit: AuditWriter
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

interface Entry {
  def: ComponentDef<unknown>
  services: unknown
  log: Logger
  state: ComponentState
  restarts: number
  restartTimes: number[]
  handle: ComponentHandle | undefined
  abort: AbortController | undefined
  /** Incremented per start attempt; a stale ctx.fail() from an older attempt is ignored. */
  generation: number
  /** A failure reported while start() was still running. */
  earlyFailure: Error | undefined
  lastError: string | undefined
  /** The start/restart sequence in flight, if any. */
  op: Promise<void> | undefined
}

type StartOutcome = { ok: true } | { ok: false; cause: string; reason: string; error: unknown } | { ok: false; cancelled: true }

export class ComponentManager {
  private readonly log: Logger
  private readonly events: EventPublisher
  private readonly metrics: KernelMetrics
  private readonly audit: AuditWriter
  private readonly now: () => number
  private readonly sleep: (ms: number) => Promise<void>
  private readonly entries = new Map<string, Entry>()
  private order: string[] = []
  private started = false
  private stopping = false
  private stopAllPromise: Promise<void> | undefined
  private stopped!: Promise<void>
  private signalStopped!: () => void

  constructor(opts: ComponentManagerOptions) {
    this.log = opts.log
    this.events = opts.events
    this.metrics = opts.metrics
    this.audit = opts.audit
    this.now = opts.now ?? Date.now
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()))
    this.stopped = new Promise((resolve) => {
      this.signalStopped = resolve
    })
  }

  register<S>(def: ComponentDef<S>, services: S): void {
    if (this.entries.has(def.name)) throw COMPONENT_DUPLICATE({ component: def.name })
    if (this.started) throw new Error(`component "${def.name}" registered after startAll(); register every component before booting`)
    this.entries.set(def.name, {
      def: def as ComponentDef<unknown>,
      services,
      log: this.log.child({ component: def.name }),
      state: 'pending',
      restarts: 0,
      restartTimes: [],
      handle: undefined,
      abort: undefined,
      generation: 0,
      earlyFailure: undefined,
      lastError: undefined,
      op: undefined,
    })
    this.metrics.componentState(def.name, 'pending')
  }

  /** Boot order of the registered components (validates the graph). */
  bootOrder(): string[] {
    return bootOrder([...this.entries.values()].map((e) => ({ name: e.def.name, dependsOn: [...e.def.requires] })))
  }

  async startAll(): Promise<void> {
    if (this.started) throw new Error('startAll() called twice')
    this.order = this.bootOrder()
    this.started = true
    this.log.info({ order: this.order }, `booting components: ${this.order.join(' → ') || '(none)'}`)
    for (const name of this.order) {
      if (this.stopping) return
      const entry = this.entries.get(name) as Entry
      const op = this.startWithPolicy(entry)
      entry.op = op.then(() => undefined)
      const outcome = await op
      entry.op = undefined
      if (outcome.ok) continue
      if ('cancelled' in outcome) return
      // Nothing half-booted stays behind: stop what started (and cancel pending restarts).
      await this.stopAll()
      throw COMPONENT_START_FAILED({ component: name, cause: outcome.cause, reason: outcome.reason }, { cause: outcome.error })
    }
  }

  /** Idempotent: concurrent and repeated calls share one shutdown. */
  stopAll(): Promise<void> {
    if (this.stopAllPromise === undefined) {
      this.stopping = true
      this.signalStopped()
      this.stopAllPromise = this.stopStarted()
    }
    return this.stopAllPromise
  }

  async status(): Promise<ComponentStatus[]> {
    const names = this.order.length > 0 ? this.order : [...this.entries.keys()]
    return Promise.all(
      names.map(async (name) => {
        const e = this.entries.get(name) as Entry
        const s: ComponentStatus = { name, state: e.state, restarts: e.restarts, healthy: false }
        if (e.lastError !== undefined) s.lastError = e.lastError
        if (e.state === 'running' && e.handle !== undefined) {
          const h = await this.health(e.handle)
          s.healthy = h.live && h.ready
          if (h.detail !== undefined) s.detail = h.detail
        }
        return s
      }),
    )
  }

  /** The current state of one component, or undefined when it is not registered. */
  state(name: string): ComponentState | undefined {
    return this.entries.get(name)?.state
  }

  // ---------------------------------------------------------------------------------------

  /**
   * Starts the component, retrying by its policy. Resolves with the outcome; on give-up the
   * component is already marked failed (state, event, metric).
   */
  private async startWithPolicy(e: Entry): Promise<StartOutcome> {
    for (;;) {
      if (this.stopping) return { ok: false, cancelled: true }
      const err = await this.attemptStart(e)
      if (err === undefined) return { ok: true }
      if (this.stopping) return { ok: false, cancelled: true }
      const cause = errorMessage(err)
      const decision = decideRestart(e.def.restart, { failed: true }, e.restartTimes, this.now())
      if (decision.action !== 'restart') {
        this.markFailed(e, cause, decision.reason)
        return { ok: false, cause, reason: decision.reason, error: err }
      }
      e.log.warn({ err, delayMs: decision.delayMs, attempt: decision.attempt }, `start failed; retrying in ${decision.delayMs} ms (${decision.reason})`)
      this.noteRestart(e)
      this.setState(e, 'restarting')
      if (!(await this.wait(decision.delayMs))) return { ok: false, cancelled: true }
    }
  }

  /** One start attempt; returns the error when start() rejected. */
  private async attemptStart(e: Entry): Promise<unknown> {
    const generation = ++e.generation
    const abort = new AbortController()
    e.abort = abort
    e.earlyFailure = undefined
    this.setState(e, 'starting')
    const ctx: ComponentContext<unknown> = {
      name: e.def.name,
      services: e.services,
      log: e.log,
      events: this.events,
      metrics: this.metrics.registry,
      audit: this.audit,
      signal: abort.signal,
      fail: (err: Error) => this.onFailure(e, generation, err),
    }
    let handle: ComponentHandle
    try {
      handle = await e.def.start(ctx)
    } catch (err) {
      abort.abort()
      e.abort = undefined
      e.lastError = errorMessage(err)
      return err ?? new Error('start() rejected without a reason')
    }
    if (generation !== e.generation || e.state !== 'starting') {
      // Shutdown gave up waiting for this start and moved on: nobody owns the handle now.
      e.log.warn('start finished after shutdown abandoned it; stopping it')
      void handle.stop().catch((err: unknown) => e.log.error({ err }, 'stop of an abandoned start failed'))
      return undefined
    }
    e.handle = handle
    // If shutdown began meanwhile, stopStarted() stops this handle once we return.
    this.setState(e, 'running')
    e.log.info('running')
    if (e.earlyFailure !== undefined) {
      const early = e.earlyFailure
      e.earlyFailure = undefined
      this.onFailure(e, generation, early)
    }
    return undefined
  }

  private onFailure(e: Entry, generation: number, err: Error): void {
    if (generation !== e.generation || this.stopping) return
    if (e.state === 'starting') {
      e.earlyFailure ??= err
      return
    }
    if (e.state !== 'running') return
    e.lastError = errorMessage(err)
    e.log.error({ err }, 'component failed while running')
    const op = this.recover(e, err)
    e.op = op
    void op.finally(() => {
      if (e.op === op) e.op = undefined
    })
  }

  /** Runtime failure: stop the old handle, then restart by policy or give up. */
  private async recover(e: Entry, err: Error): Promise<void> {
    const decision = decideRestart(e.def.restart, { failed: true }, e.restartTimes, this.now())
    await this.stopHandle(e, decision.action === 'restart' ? 'restarting' : undefined)
    if (this.stopping) return
    if (decision.action !== 'restart') {
      this.markFailed(e, errorMessage(err), decision.reason)
      return
    }
    e.log.warn({ delayMs: decision.delayMs, attempt: decision.attempt }, `restarting in ${decision.delayMs} ms (${decision.reason})`)
    this.noteRestart(e)
    if (!(await this.wait(decision.delayMs))) return
    const outcome = await this.startWithPolicy(e)
    if (!outcome.ok && !('cancelled' in outcome)) {
      e.log.error({ cause: outcome.cause }, `gave up restarting: ${outcome.reason}`)
    }
  }

  /**
   * Stops the entry's handle (bounded), aborting ctx.signal first. `via` is the state shown
   * while stopping ('stopping' by default, 'restarting' for a restart).
   */
  private async stopHandle(e: Entry, via: 'restarting' | undefined): Promise<void> {
    const handle = e.handle
    e.handle = undefined
    e.abort?.abort()
    e.abort = undefined
    this.setState(e, via ?? 'stopping')
    if (handle === undefined) return
    const timeoutMs = e.def.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS
    let timer: NodeJS.Timeout | undefined
    try {
      const result = await Promise.race([
        handle.stop().then(() => 'stopped' as const),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs)
          timer.unref()
        }),
      ])
      if (result === 'timeout') {
        e.lastError = `stop did not finish within ${timeoutMs} ms`
        e.log.error({ timeoutMs }, 'stop timed out; abandoning it')
      }
    } catch (err) {
      e.lastError = `stop failed: ${errorMessage(err)}`
      e.log.error({ err }, 'stop failed')
    } finally {
      if (timer !== undefined) clearTimeout(timer)
    }
  }

  /** Stops every started component in reverse boot order; never throws. */
  private async stopStarted(): Promise<void> {
    const names = [...this.order].reverse()
    for (const name of names) {
      const e = this.entries.get(name) as Entry
      try {
        if (e.op !== undefined) await this.bounded(e.op, e.def.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS)
        if (e.handle === undefined && e.state !== 'restarting' && e.state !== 'starting') continue
        await this.stopHandle(e, undefined)
        this.setState(e, 'stopped')
        e.log.info('stopped')
      } catch (err) {
        e.log.error({ err }, 'error while stopping; continuing shutdown')
      }
    }
  }

  private markFailed(e: Entry, cause: string, reason: string): void {
    e.lastError = cause
    this.setState(e, 'failed')
    e.log.error({ cause, reason }, `failed: ${cause} (${reason})`)
    this.events.publish('component.failed', { component: e.def.name, reason: `${cause} (${reason})` })
  }

  private noteRestart(e: Entry): void {
    e.restartTimes.push(this.now())
    e.restarts++
    this.metrics.componentRestarted(e.def.name)
  }

  private setState(e: Entry, to: ComponentState): void {
    const from = e.state
    if (from === to) return
    e.state = to
    this.metrics.componentState(e.def.name, to)
    this.events.publish('component.state', { component: e.def.name, from, to })
  }

  /** Sleeps, unless shutdown begins first; true when the full delay elapsed. */
  private async wait(ms: number): Promise<boolean> {
    if (this.stopping) return false
    const r = await Promise.race([this.sleep(ms).then(() => 'slept' as const), this.stopped.then(() => 'stopping' as const)])
    return r === 'slept' && !this.stopping
  }

  private async bounded(p: Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      p.catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms)
        timer.unref()
      }),
    ])
    if (timer !== undefined) clearTimeout(timer)
  }

  private async health(handle: ComponentHandle): Promise<ComponentHealth> {
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        Promise.resolve().then(() => handle.health()),
        new Promise<ComponentHealth>((resolve) => {
          timer = setTimeout(
            () => resolve({ live: false, ready: false, detail: `health check did not answer within ${HEALTH_TIMEOUT_MS} ms` }),
            HEALTH_TIMEOUT_MS,
          )
          timer.unref()
        }),
      ])
    } catch (err) {
      return { live: false, ready: false, detail: `health check failed: ${errorMessage(err)}` }
    } finally {
      if (timer !== undefined) clearTimeout(timer)
    }
  }
}

/** An error's message for status, events and E_COMPONENT_START_FAILED, secret-shaped parts scrubbed. */
function errorMessage(err: unknown): string {
  return redactString(err instanceof Error ? err.message : String(err))
}
