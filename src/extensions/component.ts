import { defineComponent } from '../kernel/component.js'
import type { BoundRoute, KernelServices } from '../kernel/services.js'
import { ExtensionManager, attachManager } from './manager.js'

/**
 * The `extensions` component: starts every enabled extension (each supervised by its own
 * ExtRunner with the extension restart policy) and stops them in reverse on shutdown.
 * An extension that fails never fails this component: the kernel stays healthy and `status`
 * says which extension it gave up on.
 */
export const extensionsComponent = defineComponent<{ services: KernelServices; routes: () => Promise<BoundRoute[]> }>({
  name: 'extensions',
  dependsOn: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 3, windowMs: 60_000 },
  async start(ctx) {
    const k = ctx.services.services
    const m = new ExtensionManager({ k, routes: ctx.services.routes, log: ctx.log, audit: ctx.audit, events: k.events, metrics: ctx.metrics })
    attachManager(k, m)
    await m.start()
    return {
      stop: async () => {
        await m.stop()
        attachManager(k, undefined)
      },
      health: () => m.health(),
    }
  },
})
