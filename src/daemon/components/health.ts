import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import pg from 'pg'
import { idleHandle, type ComponentHandle } from '../../kernel/component.js'
import { defineComponent } from '../component.js'
import type { InstanceHandle } from '../../kernel/services.js'
import { http } from '../../platform/http.js'
import { healthHosts, healthStatus, type Observed } from '../../health/decide.js'
import { lagBytes as lagBehind } from '../../cluster/node-ha.js'
import type { ClusterNodeRuntime } from '../../cluster/node-boot.js'

/**
 * The `health` component: when health.enabled, one plain-HTTP listener per flock instance on
 * health.host at (instance port + health.portOffset), answering Patroni's health endpoints
 * (src/health/decide.ts). Read-only and unauthenticated like Patroni's: it never reveals a
 * secret and never acts. Every second it opens listeners for new instances and closes those of
 * removed ones, so a replica added or removed, or a switchover, needs no restart.
 *
 * On a node of a multi-host flock (registered after `cluster-node`, see components/index.ts)
 * the one instance is the node's: its flock role is the one the node's HA loop gives it, and
 * the port also listens on the node's --listen address, so a load balancer on another host
 * reaches it. A standby's lag is measured, as Patroni does, against the leader node's WAL
 * position published in etcd.
 */
interface Listener {
  port: number
  hosts: string
  servers: Server[]
}

/** A node's standby: bytes its replay trails the leader node's published WAL position. */
async function nodeLag(node: ClusterNodeRuntime, replay: string): Promise<number | null> {
  try {
    const leader = await node.leadership.current()
    if (!leader) return null
    const m = await node.store.member(leader)
    return lagBehind(m?.role === 'primary' ? m.lsn : undefined, replay) ?? null
  } catch {
    return null
  }
}

async function observe(h: InstanceHandle, primary: InstanceHandle | undefined, node: ClusterNodeRuntime | undefined): Promise<Observed & { timeline: number | null; serverVersion: number | null }> {
  const base: Observed & { timeline: number | null; serverVersion: number | null } = { role: h.role, running: false, inRecovery: null, streaming: false, lagBytes: null, timeline: null, serverVersion: null }
  const c = new pg.Client({ ...(await h.connection()), connectionTimeoutMillis: 2_000, statement_timeout: 2_000 })
  c.on('error', () => undefined)
  try {
    await c.connect()
    const r = await c.query<{ rec: boolean; streaming: boolean; v: number; tl: number | null; replay: string | null }>(
      "select pg_is_in_recovery() as rec, coalesce((select status = 'streaming' from pg_stat_wal_receiver limit 1), false) as streaming, current_setting('server_version_num')::int as v, (select timeline_id from pg_control_checkpoint()) as tl, pg_last_wal_replay_lsn()::text as replay",
    )
    const row = r.rows[0]
    if (!row) return base
    Object.assign(base, { running: true, inRecovery: row.rec, streaming: row.streaming, serverVersion: row.v, timeline: row.tl })
    if (row.rec && row.replay && node) {
      base.lagBytes = await nodeLag(node, row.replay)
    } else if (row.rec && row.replay && primary && primary.name !== h.name) {
      const p = new pg.Client({ ...(await primary.connection()), connectionTimeoutMillis: 2_000, statement_timeout: 2_000 })
      p.on('error', () => undefined)
      try {
        await p.connect()
        const lag = await p.query<{ lag: string }>('select greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn), 0)::bigint::text as lag', [row.replay])
        base.lagBytes = Number(lag.rows[0]?.lag ?? NaN)
        if (!Number.isFinite(base.lagBytes)) base.lagBytes = null
      } catch {
        base.lagBytes = null
      } finally {
        await p.end().catch(() => undefined)
      }
    } else if (!row.rec) base.lagBytes = 0
  } catch {
    // not accepting connections: running stays false
  } finally {
    await c.end().catch(() => undefined)
  }
  return base
}

async function closeServers(servers: Server[]): Promise<void> {
  for (const s of servers) {
    await new Promise<void>((resolve) => {
      s.close(() => resolve())
      s.closeAllConnections()
    })
  }
}

export const healthComponent = defineComponent({
  name: 'health',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 5, windowMs: 60_000 },
  async start(ctx): Promise<ComponentHandle> {
    const k = ctx.services
    const cfg = () => k.config().health
    if (!cfg().enabled) return idleHandle('health endpoints disabled (health.enabled: false)')
    const instances = ctx.services.instances
    const listeners = new Map<string, Listener>()

    const answer = async (name: string, req: IncomingMessage, res: ServerResponse) => {
      const method = req.method ?? 'GET'
      if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
        res.writeHead(405, { allow: 'GET, HEAD, OPTIONS' }).end()
        return
      }
      const url = new URL(req.url ?? '/', 'http://health')
      const h = instances.get(name)
      if (!h) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(method === 'GET' ? JSON.stringify({ state: 'unknown', name }) : undefined)
        return
      }
      const primary = instances.members().find((m) => m.role === 'primary')
      const o = await observe(h, primary, k.live.clusterNode)
      const status = healthStatus(url.pathname, o, url.searchParams)
      const body = JSON.stringify({ state: o.running ? 'running' : 'stopped', role: o.running ? (o.inRecovery ? 'replica' : 'primary') : h.role, name, flockRole: h.role, server_version: o.serverVersion, timeline: o.timeline, lag: o.lagBytes, streaming: o.streaming })
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end(method === 'GET' && status !== 404 ? body : undefined)
    }

    const open = async (h: InstanceHandle): Promise<void> => {
      const port = h.port + cfg().portOffset
      const hosts = healthHosts(cfg().host, k.live.clusterNode?.settings.listen)
      const servers: Server[] = []
      try {
        for (const host of hosts) {
          const server = http.createServer((req, res) => {
            answer(h.name, req, res).catch((err: unknown) => {
              ctx.log.warn({ err: String(err), instance: h.name }, 'health check failed')
              if (!res.headersSent) res.writeHead(503).end()
            })
          })
          server.keepAliveTimeout = 2_000
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject)
            server.listen(port, host, () => resolve())
          })
          servers.push(server)
        }
      } catch (err) {
        await closeServers(servers)
        throw err
      }
      listeners.set(h.name, { port, hosts: hosts.join(','), servers })
      ctx.log.info({ instance: h.name, port, hosts }, 'health endpoints listening')
    }

    const close = async (name: string): Promise<void> => {
      const l = listeners.get(name)
      if (!l) return
      listeners.delete(name)
      await closeServers(l.servers)
    }

    const reconcile = async (): Promise<void> => {
      const want = new Map(instances.members().map((m) => [m.name, m]))
      for (const [name, l] of listeners) {
        const m = want.get(name)
        if (!m || m.port + cfg().portOffset !== l.port || healthHosts(cfg().host, k.live.clusterNode?.settings.listen).join(',') !== l.hosts) await close(name)
      }
      for (const m of want.values()) {
        if (listeners.has(m.name)) continue
        try {
          await open(m)
        } catch (err) {
          ctx.log.warn({ instance: m.name, err: String(err) }, 'cannot open the health port of an instance (retrying)')
        }
      }
    }

    await reconcile()
    let stopped = false
    let busy = false
    const timer = setInterval(() => {
      if (busy || stopped) return
      busy = true
      reconcile()
        .catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'health reconcile failed'))
        .finally(() => (busy = false))
    }, 1_000)
    timer.unref()
    return {
      async stop() {
        stopped = true
        clearInterval(timer)
        for (const name of [...listeners.keys()]) await close(name)
      },
      health: () => ({ live: true, ready: true, detail: `health endpoints on ${[...listeners.entries()].map(([n, l]) => `${n}:${l.hosts}:${l.port}`).join(', ') || 'no instance yet'}` }),
    }
  },
})
