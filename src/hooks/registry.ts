import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { OBSERVE_ONLY_POINTS, type HookPoint } from '../api/events.js'
import type { AuditWriter } from '../kernel/component.js'
import { hasGrant, type Principal } from '../kernel/grants.js'
import type { HookContext, HookRunner, KernelEvents } from '../kernel/services.js'
import { HOOK_INVOCATION_NOT_FOUND, HOOK_NOT_GRANTED, HOOK_OBSERVE_ONLY, HOOK_VETOED } from '../events/errors.js'

/**
 * Extension hooks: registry and invocation.
 *
 * An extension registers for a point with a declared effect and timeout (POST /v1/hooks,
 * grant `hooks:<point>:<effect>`; a veto grant also covers observe). One registration per
 * extension and point; registering again replaces it. Registrations live in kernel memory:
 * an extension registers when it starts (and again after a kernel restart).
 *
 * Invocation: each hook gets a `hook.invoke` event {hookId, invocationId, point, context} on
 * its extension's event stream.
 *   veto hooks    — `run` waits (all in parallel) for POST /v1/hooks/invocations/:id
 *                   {verdict, reason} up to the hook's timeout. A veto → E_HOOK_VETOED naming
 *                   the extension and its reason; nothing of the operation has happened yet.
 *   observe hooks — told, never awaited.
 *   timeout       — logged, audited (action hook.timeout), published as hook.timeout, and
 *                   the hook is skipped: the operation goes on as if it had allowed.
 * Points after the fact (backup.after, replication.role_changed, failover.after) are
 * observe-only: `notify` returns at once, so a hanging extension can never hold up a
 * failover.
 */
export interface HookRegistration {
  hookId: string
  extension: string
  point: HookPoint
  effect: 'observe' | 'veto'
  timeoutMs: number
}

interface Pending {
  extension: string
  resolve: (answer: { verdict: 'allow' | 'veto'; reason: string }) => void
}

/** Points that can be vetoed; the others only observed. */
export const AFTER_THE_FACT: readonly HookPoint[] = [...OBSERVE_ONLY_POINTS, 'backup.after']

export class HookRegistry implements HookRunner {
  private readonly hooks = new Map<string, HookRegistration>()
  private readonly pending = new Map<string, Pending>()

  constructor(private readonly deps: { events: KernelEvents; audit: AuditWriter; log: Logger }) {}

  register(principal: Principal, input: { point: HookPoint; effect: 'observe' | 'veto'; timeoutMs: number }): HookRegistration {
    const extension = principal.extension ?? ''
    if (input.effect === 'veto' && AFTER_THE_FACT.includes(input.point)) throw HOOK_OBSERVE_ONLY({ point: input.point })
    const needed = `hooks:${input.point}:${input.effect}`
    const ok = hasGrant(principal, needed) || (input.effect === 'observe' && hasGrant(principal, `hooks:${input.point}:veto`))
    if (principal.role !== 'extension' || !ok) throw HOOK_NOT_GRANTED({ extension: extension || principal.role, capability: needed })
    const key = `${extension}\u0000${input.point}`
    const reg: HookRegistration = { hookId: `h_${randomBytes(6).toString('hex')}`, extension, point: input.point, effect: input.effect, timeoutMs: input.timeoutMs }
    this.hooks.set(key, reg)
    return reg
  }

  /** Forgets every hook of an extension (disabled or removed). */
  dropExtension(extension: string): void {
    for (const [k, h] of this.hooks) if (h.extension === extension) this.hooks.delete(k)
  }

  list(): HookRegistration[] {
    return [...this.hooks.values()]
  }

  answer(principal: Principal, invocationId: string, verdict: 'allow' | 'veto', reason: string): void {
    const p = this.pending.get(invocationId)
    if (!p || p.extension !== principal.extension) throw HOOK_INVOCATION_NOT_FOUND({ invocationId })
    this.pending.delete(invocationId)
    p.resolve({ verdict, reason })
  }

  /** Runs the hooks of a point that can be vetoed; throws E_HOOK_VETOED on the first veto. */
  async run(point: HookPoint, context: HookContext): Promise<void> {
    const hooks = this.list().filter((h) => h.point === point)
    if (hooks.length === 0) return
    const verdicts = await Promise.all(hooks.map((h) => this.invoke(h, context)))
    const veto = verdicts.find((v) => v.verdict === 'veto')
    if (veto) throw HOOK_VETOED({ point, extension: veto.hook.extension, reason: veto.reason })
  }

  /** Tells observers of a point; returns at once, never throws, never waits. */
  notify(point: HookPoint, context: HookContext): void {
    const hooks = this.list().filter((h) => h.point === point)
    if (hooks.length === 0) return
    setImmediate(() => {
      for (const h of hooks) this.publishInvoke(h, `i_${randomBytes(8).toString('hex')}`, context)
    })
  }

  private publishInvoke(h: HookRegistration, invocationId: string, context: HookContext): void {
    this.deps.events.publish('hook.invoke', { hookId: h.hookId, invocationId, point: h.point, extension: h.extension, effect: h.effect, timeoutMs: h.timeoutMs, context })
  }

  private async invoke(h: HookRegistration, context: HookContext): Promise<{ hook: HookRegistration; verdict: 'allow' | 'veto'; reason: string }> {
    const invocationId = `i_${randomBytes(8).toString('hex')}`
    if (h.effect === 'observe') {
      this.publishInvoke(h, invocationId, context)
      return { hook: h, verdict: 'allow', reason: '' }
    }
    let timer: NodeJS.Timeout | undefined
    const answer = new Promise<{ verdict: 'allow' | 'veto'; reason: string } | 'timeout'>((resolve) => {
      this.pending.set(invocationId, { extension: h.extension, resolve })
      timer = setTimeout(() => resolve('timeout'), h.timeoutMs)
    })
    this.publishInvoke(h, invocationId, context)
    const got = await answer
    clearTimeout(timer)
    this.pending.delete(invocationId)
    if (got === 'timeout') {
      this.deps.log.warn({ extension: h.extension, point: h.point, hookId: h.hookId, invocationId, timeoutMs: h.timeoutMs }, 'hook timed out; skipped')
      this.deps.events.publish('hook.timeout', { hookId: h.hookId, invocationId, point: h.point, extension: h.extension, timeoutMs: h.timeoutMs })
      await this.deps.audit
        .append({ actor: `ext:${h.extension}`, role: 'extension', action: 'hook.timeout', target: h.point, result: 'error', details: { hookId: h.hookId, invocationId, timeoutMs: h.timeoutMs } })
        .catch((err: unknown) => this.deps.log.error({ err }, 'audit append failed for a hook timeout'))
      return { hook: h, verdict: 'allow', reason: '' }
    }
    if (got.verdict === 'veto') {
      this.deps.events.publish('hook.vetoed', { hookId: h.hookId, invocationId, point: h.point, extension: h.extension, reason: got.reason })
      await this.deps.audit
        .append({ actor: `ext:${h.extension}`, role: 'extension', action: 'hook.veto', target: h.point, result: 'ok', details: { hookId: h.hookId, invocationId, reason: got.reason.slice(0, 200) } })
        .catch((err: unknown) => this.deps.log.error({ err }, 'audit append failed for a hook veto'))
    }
    return { hook: h, ...got }
  }

  /**
   * Wires the replication points to the bus: a failover or switchover that completed tells
   * observers of failover.after and replication.role_changed. Events are delivered after
   * the fact and `notify` never waits, so the failover path is never held up.
   */
  observeReplication(): () => void {
    return this.deps.events.subscribe((ev) => {
      const p = ev.payload as { from?: string; to?: string; name?: string; reason?: string; automatic?: boolean; timeline?: number | null }
      if (ev.type === 'failover.completed') {
        this.notify('failover.after', { from: p.from ?? '', to: p.to ?? '', reason: p.reason ?? '', automatic: p.automatic === true, timeline: p.timeline ?? null })
        this.notify('replication.role_changed', { instance: p.to ?? '', from: 'replica', to: 'primary', cause: 'failover' })
        this.notify('replication.role_changed', { instance: p.from ?? '', from: 'primary', to: 'fenced', cause: 'failover' })
      } else if (ev.type === 'switchover.completed') {
        this.notify('replication.role_changed', { instance: p.to ?? '', from: 'replica', to: 'primary', cause: 'switchover' })
        this.notify('replication.role_changed', { instance: p.from ?? '', from: 'primary', to: 'replica', cause: 'switchover' })
      } else if (ev.type === 'instance.rejoined') {
        this.notify('replication.role_changed', { instance: p.name ?? '', from: 'fenced', to: 'replica', cause: 'rejoin' })
      }
    })
  }
}
