import type { status } from './core.js'
import { statusMeta } from './core-meta.js'
import type { LazyRoute } from './route-meta.js'

/**
 * Routes as the CLI calls them on its fast paths: metadata only, the contract (zod and the
 * schemas) loaded on demand. `magflock status` imports this module, not core.ts, so a status
 * call loads neither zod nor any schema (test/e2e/status-watch.test.ts checks it).
 */
export const statusRoute: LazyRoute<typeof status> = { ...statusMeta, contract: async () => (await import('./core.js')).status }
