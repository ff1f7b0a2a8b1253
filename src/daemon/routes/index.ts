import type { DaemonRoute } from '../services.js'
import { backupRoutes } from './backup.js'
import { configRoutes } from './config.js'
import { coreRoutes } from './core.js'
import { dbRoutes } from './db.js'
import { realtimeRoutes } from './realtime.js'
import { replicationRoutes } from './replication.js'
import { poolerRoutes } from './pooler.js'
import { eventsRoutes } from './events.js'
import { extensionRoutes } from './extensions.js'
import { nodeRoutes } from './node.js'

/**
 * Every control-API route the kernel serves. Each area keeps its handlers in its own file
 * (routes/<area>.ts exporting `<area>Routes: DaemonRoute[]`) and adds one line here.
 */
export const allRoutes: DaemonRoute[] = [...coreRoutes, ...configRoutes, ...dbRoutes, ...backupRoutes, ...replicationRoutes, ...realtimeRoutes, ...poolerRoutes, ...eventsRoutes, ...extensionRoutes, ...nodeRoutes]
