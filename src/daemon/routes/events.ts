import * as api from '../../api/events.js'
import { serveEvents } from '../../events/stream.js'
import { HookRegistry } from '../../hooks/registry.js'
import { INTERNAL } from '../../errors/index.js'
import { handle, type DaemonRoute } from '../services.js'
import type { KernelServices } from '../../kernel/services.js'

function registry(k: KernelServices): HookRegistry {
  if (!(k.hooks instanceof HookRegistry)) throw INTERNAL({ message: 'the hook registry is not running' })
  return k.hooks
}

export const eventsRoutes: DaemonRoute[] = [
  handle(api.eventsStream, async (input, ctx, k) => {
    if (!ctx.stream) throw INTERNAL({ message: 'events.stream needs a raw stream' })
    const end = await serveEvents({
      journal: k.journal,
      principal: ctx.principal,
      stream: ctx.stream,
      signal: ctx.signal,
      after: input.after,
      types: input.type,
      follow: input.follow === '1',
      maxQueuedBytes: k.config().kernel.events.readerMaxQueuedBytes,
      onDropped: (info) => k.log.warn({ ...info, tokenId: ctx.principal.tokenId, extension: ctx.principal.extension }, 'events: slow reader disconnected'),
    })
    ctx.auditDetails.end = end
    return {}
  }),

  handle(api.hookRegister, async (input, ctx, k) => {
    const reg = registry(k).register(ctx.principal, input)
    Object.assign(ctx.auditDetails, { hookId: reg.hookId, point: reg.point, effect: reg.effect })
    return { hookId: reg.hookId, point: reg.point, effect: reg.effect, timeoutMs: reg.timeoutMs }
  }),

  handle(api.hookAnswer, async (input, ctx, k) => {
    ctx.auditDetails.verdict = input.verdict
    registry(k).answer(ctx.principal, input.invocationId, input.verdict, input.reason)
    return { invocationId: input.invocationId, accepted: true }
  }),
]
