import { existsSync } from 'node:fs'
import path from 'node:path'
import { idleHandle, type ComponentHandle } from '../../kernel/component.js'
import { defineComponent } from '../component.js'
import { REALTIME_SLOT } from '../../realtime/names.js'

/**
 * `realtime`: the Supabase Realtime-compatible WebSocket server and its change stream
 * (realtime.ts). Its implementation (ws, the logical replication client, protobufjs, the hub)
 * loads only when realtime.enabled is true, so a kernel without realtime neither loads nor
 * runs any of it. realtime.enabled needs a restart (src/config/diff.ts), which boots this
 * component again with the new value.
 *
 * Disabled, it drops a leftover slot so that nothing holds WAL back for it. Postgres keeps
 * every persistent slot in <data>/pg_replslot/<name>/, created with the slot and removed with
 * it, so the usual case (no slot) costs one stat instead of a connection to the primary.
 */
export const realtimeComponent = defineComponent({
  name: 'realtime',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 5, windowMs: 300_000 },
  stopTimeoutMs: 15_000,
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services
    const cfg = k.config().realtime
    if (cfg.enabled) return (await import('./realtime.js')).startRealtime(ctx)
    let detail = 'disabled (realtime.enabled=false)'
    try {
      const primary = k.instances.primary()
      if (existsSync(path.join(k.layout.dataDir(primary.name), 'pg_replslot', REALTIME_SLOT))) {
        const { dropRealtimeSlot } = await import('../../realtime/stream.js')
        if (await dropRealtimeSlot({ ...(await primary.connection()), database: cfg.database })) detail += '; dropped the leftover realtime slot'
      }
    } catch {
      // No primary right now, or it refuses: nothing of ours can hold WAL there either way.
    }
    return idleHandle(detail)
  },
})
