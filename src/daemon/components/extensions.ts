import { ControlServer } from '../../kernel/server.js'
import { ExtensionManager, attachManager } from '../../extensions/manager.js'
import { defineComponent } from '../component.js'
import { routeServicesOf } from '../services.js'

/**
 * The `extensions` component: starts every enabled extension (each supervised by its own
 * ExtRunner with the extension restart policy) and stops them in reverse on shutdown.
 * An extension that fails never fails this component: the kernel stays healthy and `status`
 * says which extension it gave up on. Each extension's own API socket is a ControlServer over
 * the kernel's routes, built here (the composition root owns the routes).
 */
export const extensionsComponent = defineComponent({
  name: 'extensions',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 3, windowMs: 60_000 },
  async start(ctx) {
    const k = ctx.services
    const routes = async () => (await import('../routes/index.js')).allRoutes
    const m = new ExtensionManager({
      k,
      serve: async (o) => new ControlServer({ ...o, routes: await routes(), services: () => routeServicesOf(k) }),
      routeIds: async () => (await routes()).map((r) => r.def.id),
      log: ctx.log,
      audit: ctx.audit,
      events: k.events,
      metrics: ctx.metrics,
    })
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
