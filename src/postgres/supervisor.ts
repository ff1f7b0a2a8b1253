import type { Logger } from 'pino'
import { z } from 'zod'
import type { EventPublisher } from '../kernel/component.js'
import { decideRestart, type RestartPolicy } from '../kernel/restart-policy.js'
import { isMagflockError } from '../errors/index.js'
import { INSTANCE_STOP_TIMEOUT } from './errors.js'
import { isProcessAlive, killProcessesInDataDir } from './pidfile.js'
import { adoptInstance, startInstance, takeEarlyPostmaster, type InstanceSpec, type PostgresExit, type PostgresProcess } from './instance.js'

/**
 * Keeps one Postgres instance running (the kernel's `postgres` component holds one per
 * instance). It adopts a running postmaster or starts one, watches it, and when it dies
 * without being asked to, restarts it by the restart policy:
 *
 *   postmaster dies → `instance.crashed` → SIGKILL of its orphaned backends at once (they hold
 *   the shared memory and could still acknowledge a commit) → backoff (decideRestart) →
 *   startInstance, which replaces the stale postmaster.pid → `instance.restarted` +
 *   onRestart(); a failed attempt counts as a restart and publishes `instance.restart-failed`
 *   (the failover monitor stops waiting for a restart in place then), and once the policy
 *   gives up → `instance.failed`, state `failed`, onFailed(reason).
 *
 * Invariants: a stopped supervisor never starts Postgres (stop() cancels a pending backoff and
 * waits for an attempt in flight); a paused one neither (switchover stops and starts the
 * instance itself between pauseSupervision() and resumeSupervision()). Every decision is one
 * sentence in `lastDecision`, which health().detail shows.
 */
export type SupervisorState = 'running' | 'starting' | 'stopped' | 'crashed' | 'restarting' | 'failed'

export interface SupervisorOptions {
  log: Logger
  events: EventPublisher
  restart: RestartPolicy
  /** Called after each successful restart (the kernel counts the metric there). */
  onRestart?: () => void
  /** Called once when the policy gives up (state `failed`). */
  onFailed?: (reason: string) => void
  now?: () => number
  role?: 'primary' | 'replica' | 'standalone'
  /** How long a fast shutdown may take in stop() before it escalates to immediate. */
  stopTimeoutMs?: number
  /**
   * The postmaster start() finds running was started by this kernel a moment ago (pg_ctl for a
   * new replica, a rejoin, a restored copy): taken over, but not reported as adopted.
   */
  tookOver?: boolean
}

export interface SupervisorStatus {
  name: string
  state: SupervisorState
  pid: number | null
  /** Running since before this kernel started (re-adopted), not started by it. */
  adopted: boolean
  restarts: number
  port: number
}

/** Payload schemas of the events the supervisor publishes, for the kernel's event registry. */
export const instanceEventSchemas = {
  'instance.crashed': z.object({
    instance: z.string(),
    pid: z.number().int(),
    signal: z.string().optional(),
    exitCode: z.number().int().optional(),
  }),
  'instance.restarted': z.object({ instance: z.string(), pid: z.number().int(), attempt: z.number().int() }),
  'instance.restart-failed': z.object({ instance: z.string(), attempt: z.number().int(), reason: z.string() }),
  'instance.failed': z.object({ instance: z.string(), reason: z.string() }),
} as const

export class InstanceSupervisor {
  /** Mutable on purpose: a switchover may change port or settings while supervision is paused. */
  spec: InstanceSpec
  role: 'primary' | 'replica' | 'standalone'
  private readonly opts: SupervisorOptions
  private readonly now: () => number
  private state: SupervisorState = 'stopped'
  private proc: PostgresProcess | undefined
  private restarts = 0
  private readonly restartTimes: number[] = []
  private stopped = false
  private paused = false
  /** Bumped whenever a watched process is replaced or abandoned, so stale exits are ignored. */
  private generation = 0
  private starting: Promise<void> | undefined
  private loop: Promise<void> | undefined
  private stopping: Promise<void> | undefined
  private wake: (() => void) | undefined
  private decision = 'not started'
  /** Pid of a postmaster found running at start() that this kernel did not start. */
  private inheritedPid: number | undefined

  constructor(spec: InstanceSpec, opts: SupervisorOptions) {
    this.spec = spec
    this.opts = opts
    this.role = opts.role ?? 'primary'
    this.now = opts.now ?? Date.now
  }

  /** Adopts the running postmaster or starts one; resolves once it accepts connections. Idempotent. */
  start(): Promise<void> {
    if (this.starting) return this.starting
    if (this.state === 'running' && this.proc) return Promise.resolve()
    this.stopped = false
    this.stopping = undefined
    this.starting = this.launch().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async launch(): Promise<void> {
    this.state = 'starting'
    let proc: PostgresProcess
    try {
      // A postmaster the kernel's first stage spawned is ours: taken, not adopted.
      proc = (await takeEarlyPostmaster(this.spec)) ?? (await adoptInstance(this.spec)) ?? (await startInstance(this.spec))
    } catch (err) {
      this.state = 'stopped'
      this.note(`could not start: ${describe(err)}`, 'error')
      throw err
    }
    this.inheritedPid = proc.adopted && !this.opts.tookOver ? proc.pid : undefined
    if (this.stopped) {
      // stop() arrived while we were starting; it waits for us and then deals with this.proc.
      this.watch(proc)
      return
    }
    this.watch(proc)
    this.state = 'running'
    this.note(proc.adopted ? `adopted running postgres (pid ${proc.pid})` : `started postgres (pid ${proc.pid}) on port ${this.spec.port}`)
  }

  /**
   * Stops supervising. keepRunning leaves Postgres up (kernel stop, kernel shutdown) and
   * only forgets the process; otherwise a fast shutdown, escalated to immediate if it overruns.
   */
  stop(opts: { keepRunning: boolean }): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopped = true
    this.wake?.()
    this.stopping = (async () => {
      await this.starting?.catch(() => undefined)
      await this.loop?.catch(() => undefined)
      const proc = this.proc
      this.generation++
      this.proc = undefined
      if (proc) {
        if (opts.keepRunning) {
          proc.detach()
          this.note(`stopped supervising; postgres keeps running (pid ${proc.pid})`)
        } else {
          try {
            await proc.stop('fast', this.opts.stopTimeoutMs)
          } catch (err) {
            if (!INSTANCE_STOP_TIMEOUT.is(err)) throw err
            this.note(`fast shutdown overran; immediate shutdown of pid ${proc.pid}`, 'warn')
            await proc.stop('immediate')
          } finally {
            proc.detach()
          }
          this.note(`stopped postgres (pid ${proc.pid})`)
        }
      }
      this.state = 'stopped'
    })()
    return this.stopping
  }

  /**
   * Hands the instance to someone else (switchover): after this resolves no restart is
   * pending or in flight, and an exit of the postmaster is not treated as a crash.
   */
  async pauseSupervision(): Promise<void> {
    this.paused = true
    this.wake?.()
    await this.loop?.catch(() => undefined)
    // A restart loop cut short by the pause leaves nothing running: say stopped, not restarting.
    if (!this.proc && (this.state === 'restarting' || this.state === 'crashed')) this.state = 'stopped'
    this.note('supervision paused')
  }

  /**
   * Takes the instance back: adopts what runs in the data dir now, or starts it. When that
   * fails the error is thrown and the restart policy takes over, as after a crash.
   */
  async resumeSupervision(): Promise<void> {
    this.paused = false
    if (this.stopped) return
    // The old postmaster may have been stopped a moment ago, before our watcher noticed.
    if (this.proc && !(await isProcessAlive(this.proc.pid))) {
      this.generation++
      this.proc.detach()
      this.proc = undefined
    }
    if (this.proc) {
      this.state = 'running'
      this.note(`supervision resumed (pid ${this.proc.pid})`)
      return
    }
    this.state = 'starting'
    try {
      const proc = (await adoptInstance(this.spec)) ?? (await startInstance(this.spec))
      if (this.stopped || this.paused) {
        this.watch(proc)
        return
      }
      this.watch(proc)
      this.state = 'running'
      this.note(`supervision resumed (pid ${proc.pid})`)
    } catch (err) {
      this.state = 'crashed'
      this.note(`could not start on resume: ${describe(err)}`, 'error')
      this.loop = this.restartLoop(true)
      throw err
    }
  }

  status(): SupervisorStatus {
    return {
      name: this.spec.name,
      state: this.state,
      pid: this.proc?.pid ?? null,
      // Only a postmaster that was running before this kernel: not one it started and took over.
      adopted: this.proc !== undefined && this.proc.pid === this.inheritedPid,
      restarts: this.restarts,
      port: this.spec.port,
    }
  }

  health(): { live: boolean; ready: boolean; detail: string } {
    const live = this.state !== 'failed' && this.state !== 'stopped'
    const where = `${this.role} ${this.spec.name} on ${this.spec.host}:${this.spec.port}`
    return { live, ready: this.state === 'running', detail: `${where} is ${this.state}: ${this.decision}` }
  }

  /** The last thing the supervisor decided, as one sentence. */
  lastDecision(): string {
    return this.decision
  }

  private halted(): boolean {
    return this.stopped || this.paused
  }

  private note(sentence: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    this.decision = sentence
    this.opts.log[level]({ instance: this.spec.name, role: this.role }, sentence)
  }

  /** An event bus or callback that throws must not stop supervision. */
  private publish(type: keyof typeof instanceEventSchemas, payload: Record<string, unknown>): void {
    this.callback(() => this.opts.events.publish(type, payload))
  }

  private callback(fn: () => unknown): void {
    try {
      fn()
    } catch (err) {
      this.opts.log.error({ instance: this.spec.name, err }, 'supervisor callback failed')
    }
  }

  private watch(proc: PostgresProcess): void {
    const gen = ++this.generation
    this.proc = proc
    void proc.exited.then((exit) => this.onExit(gen, proc, exit))
  }

  private onExit(gen: number, proc: PostgresProcess, exit: PostgresExit): void {
    if (gen !== this.generation) return
    this.proc = undefined
    proc.detach()
    if (this.halted()) {
      this.state = 'stopped'
      this.note(`postgres (pid ${proc.pid}) exited while supervision was ${this.stopped ? 'stopped' : 'paused'}; not restarting`)
      return
    }
    // Exit code 0 is a clean shutdown someone else asked for (pg_ctl stop, SIGTERM): not a
    // crash, though policy `always` still brings it back. An adopted process's exit status is
    // unknowable (code and signal null), so its death counts as a crash.
    const clean = exit.code === 0 && !exit.signal
    if (clean) {
      this.state = 'stopped'
      this.note(`postgres (pid ${proc.pid}) shut down cleanly without being asked by MagFlock`, 'warn')
    } else {
      this.state = 'crashed'
      const how = exit.signal ? `signal ${exit.signal}` : exit.code !== null ? `exit code ${exit.code}` : 'unknown cause'
      this.note(`postgres (pid ${proc.pid}) died unexpectedly (${how})`, 'error')
      this.publish('instance.crashed', {
        instance: this.spec.name,
        pid: proc.pid,
        ...(exit.signal ? { signal: exit.signal } : {}),
        ...(exit.code !== null ? { exitCode: exit.code } : {}),
      })
    }
    this.loop = (async () => {
      if (!clean) await this.killOrphans()
      await this.restartLoop(!clean)
    })()
  }

  /** The dead postmaster's children, killed before anything else happens (see killProcessesInDataDir). */
  private async killOrphans(): Promise<void> {
    try {
      const pids = await killProcessesInDataDir(this.spec.dataDir)
      if (pids.length > 0) this.note(`killed ${pids.length} process(es) orphaned by the dead postmaster`, 'warn')
    } catch (err) {
      this.opts.log.error({ instance: this.spec.name, err }, 'could not kill orphaned backends')
    }
  }

  private async restartLoop(failed: boolean): Promise<void> {
    for (;;) {
      if (this.halted()) return
      const d = decideRestart(this.opts.restart, { failed }, this.restartTimes, this.now())
      if (d.action === 'stay-stopped' && !failed) {
        // on-failure policy and a clean exit (someone ran pg_ctl stop): stay down, no alarm.
        this.state = 'stopped'
        this.note(`not restarting: ${d.reason}`, 'warn')
        return
      }
      if (d.action !== 'restart') {
        this.state = 'failed'
        const reason = `gave up restarting: ${d.reason}`
        this.note(reason, 'error')
        this.publish('instance.failed', { instance: this.spec.name, reason })
        this.callback(() => this.opts.onFailed?.(reason))
        return
      }
      this.state = 'restarting'
      this.note(`restarting in ${d.delayMs} ms (${d.reason})`, 'warn')
      await this.sleep(d.delayMs)
      if (this.halted()) return
      this.restartTimes.push(this.now())
      let proc: PostgresProcess
      try {
        proc = await startInstance(this.spec)
      } catch (err) {
        failed = true
        this.state = 'crashed'
        const reason = describe(err)
        this.note(`restart attempt ${d.attempt} failed: ${reason}`, 'error')
        this.publish('instance.restart-failed', { instance: this.spec.name, attempt: d.attempt, reason: reason.slice(0, 500) })
        continue
      }
      if (this.halted()) {
        // stop()/pauseSupervision() is waiting for this loop and takes the process from here.
        this.watch(proc)
        return
      }
      this.restarts++
      this.watch(proc)
      this.state = 'running'
      this.note(`restarted postgres (pid ${proc.pid}), attempt ${d.attempt}`)
      this.publish('instance.restarted', { instance: this.spec.name, pid: proc.pid, attempt: d.attempt })
      this.callback(() => this.opts.onRestart?.())
      return
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined
        resolve()
      }, ms)
      this.wake = () => {
        clearTimeout(timer)
        this.wake = undefined
        resolve()
      }
    })
  }
}

function describe(err: unknown): string {
  if (isMagflockError(err)) return `${err.code}: ${err.message.split('\n')[0]}`
  return err instanceof Error ? err.message : String(err)
}
