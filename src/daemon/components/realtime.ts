import http from 'node:http'
import pg from 'pg'
import { WebSocketServer } from 'ws'
import { Histogram } from 'prom-client'
import type { ComponentHandle, ComponentContext } from '../../kernel/component.js'
import type { DaemonServices } from '../services.js'
import { PORT_IN_USE } from '../../errors/index.js'
import { stopInstance } from '../../postgres/instance.js'
import { counterOn, gaugeOn } from '../../telemetry/metrics.js'
import { Hub } from '../../realtime/hub.js'
import { verifyJwt } from '../../realtime/jwt.js'
import { parseVsn } from '../../realtime/protocol.js'
import { RowVisibility } from '../../realtime/rls.js'
import { ChangeStream } from '../../realtime/stream.js'
import { REALTIME_PUBLICATION } from '../../realtime/names.js'
import { realtimeSecret } from '../../realtime/token.js'
import { LatencyRing } from '../../realtime/runtime.js'
import { instanceSettings } from '../../realtime/settings.js'
import { chooseWriter, chooseYield } from '../../realtime/native.js'

/**
 * The `realtime` component's work when realtime.enabled is true (declared in
 * realtime-component.ts, which loads this module only then): a WebSocket server speaking the
 * Supabase Realtime protocol (src/realtime/hub.ts) fed by one logical replication stream of
 * the primary (src/realtime/stream.ts).
 *
 * It never endangers the database or the kernel: the stream reconnects on its own (new
 * primary after a failover included) and reports in health instead of failing; the slot is
 * dropped past realtime.slotMaxRetainedMB; a client that does not read is dropped.
 */
export async function startRealtime(ctx: ComponentContext<DaemonServices>): Promise<ComponentHandle> {
  const k = ctx.services
  const instances = k.instances
  const cfg = k.config().realtime
  await ensureLogicalWal(ctx, k, instances)
  const secret = await realtimeSecret(k.secrets)
  const m = metrics(ctx)
  const ring = new LatencyRing()
  let dropped = 0
  let protocolErrors = 0
  let pool: pg.Pool | undefined
  let poolFor: string | undefined
  let poolReady: Promise<pg.Pool> | undefined
  // One pool per primary, however many joins ask at once (every client of a restarted kernel
  // reconnects and joins together): the first caller makes it, the others await the same promise.
  const ensurePool = (): Promise<pg.Pool> => {
    const p = instances.primary()
    const key = `${p.name}:${p.port}`
    if (poolReady && poolFor === key) return poolReady
    poolFor = key
    const made = (async () => {
      const next = new pg.Pool({ ...(await p.connection(cfg.database)), max: 4, application_name: 'magflock-realtime-rls', connectionTimeoutMillis: 3000 })
      next.on('error', () => undefined)
      const old = pool
      pool = next
      void old?.end().catch(() => undefined)
      return next
    })()
    poolReady = made
    made.catch(() => {
      // Not made (the primary's connection details could not be read): the next caller retries.
      if (poolReady === made) poolReady = poolFor = undefined
    })
    return made
  }
  const visibility = new RowVisibility(() => pool)

  const writer = chooseWriter(cfg.nativeWrites)
  if (cfg.nativeWrites && !writer.native) ctx.log.warn({ reason: writer.detail }, 'realtime: the native socket writer is not available; each socket is written through Node')
  const yieldCpu = chooseYield(cfg.yieldCpu)
  if (cfg.yieldCpu && !yieldCpu) ctx.log.warn('realtime: the native part is not available; the flush cannot yield the CPU between slices')
  const hub = new Hub({
    nativeWrites: writer.writes,
    yieldCpu,
    maxBufferedBytes: cfg.maxBufferedBytes,
    maxChannelsPerClient: cfg.maxChannelsPerClient,
    publication: REALTIME_PUBLICATION,
    verify: (t) => verifyJwt(t, secret),
    visibleBatch: async (items) => {
      await ensurePool()
      return visibility.visibleBatch(items)
    },
    visibleGroupsCached: (ch, groups) => (pool ? visibility.visibleGroupsCached(ch, groups) : undefined),
    roleExists: async (role) => {
      try {
        const r = await (await ensurePool()).query('select 1 from pg_roles where rolname = $1', [role])
        return (r.rowCount ?? 0) > 0
      } catch {
        return undefined
      }
    },
    published: async (schema, table) => {
      try {
        const r = await (await ensurePool()).query(
          'select 1 from pg_publication_tables where pubname = $1 and ($2 = \'*\' or schemaname = $2) and ($3::text is null or $3 = \'*\' or tablename = $3)',
          [REALTIME_PUBLICATION, schema, table ?? null],
        )
        return (r.rowCount ?? 0) > 0
      } catch {
        return undefined
      }
    },
    onDropSlow: (bytes) => {
      dropped++
      m.dropped.inc()
      ctx.events.publish('realtime.client_dropped', { reason: 'slow consumer', bufferedBytes: bytes })
    },
    onProtocolError: () => {
      protocolErrors++
      m.protocolErrors.inc()
    },
    onDeliveryError: (err) => {
      m.deliveryErrors.inc()
      ctx.log.warn({ err: err.message }, 'realtime: a change could not be delivered and was skipped')
    },
    onDelivered: (n, ms) => {
      if (n === 0) return
      m.delivered.inc(n)
      m.latency.observe(ms / 1000)
      ring.add(ms)
    },
  })

  const stream = new ChangeStream({
    database: cfg.database,
    capBytes: cfg.slotMaxRetainedMB * 1024 * 1024,
    primary: async () => {
      const p = instances.primary()
      return { name: p.name, conn: await p.connection(cfg.database) }
    },
    onChange: (ch) => {
      m.changes.inc()
      hub.deliver(ch)
    },
    backlog: () => (hub.backlog() > 10_000 ? hub.drained() : undefined),
    onGap: (reason) => {
      visibility.invalidate()
      const n = hub.systemNotice('error', `ChangesMayHaveBeenMissed: ${reason}`)
      ctx.events.publish('realtime.stream_gap', { reason, channelsNotified: n })
      ctx.log.warn({ channelsNotified: n }, reason)
    },
    log: ctx.log,
  })

  const wss = new WebSocketServer({ noServer: true, maxPayload: cfg.maxMessageBytes, perMessageDeflate: false })
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MagFlock realtime: connect with a WebSocket to /realtime/v1/websocket\n')
  })
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${text}\n`)
    }
    if (!url.pathname.endsWith('/websocket')) return refuse(404, 'not found: the WebSocket endpoint is /realtime/v1/websocket')
    const vsn = parseVsn(url.searchParams.get('vsn'))
    if (!vsn) return refuse(400, 'unsupported vsn: use 1.0.0 or 2.0.0')
    const auth = req.headers.authorization
    const token = url.searchParams.get('apikey') ?? url.searchParams.get('access_token') ?? (auth?.startsWith('Bearer ') ? auth.slice(7) : null)
    const v = verifyJwt(token, secret)
    if (!v.ok) {
      m.refused.inc()
      return refuse(token === null ? 401 : 403, `${v.message}`)
    }
    wss.handleUpgrade(req, socket, head, (ws) => hub.attach(ws, vsn, v.claims))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? PORT_IN_USE({ port: cfg.port, what: 'realtime.port' }) : err))
    server.listen({ port: cfg.port, host: cfg.host }, () => resolve())
  })
  server.on('error', (err) => ctx.log.error({ err: err.message }, 'realtime server error'))
  stream.start()

  const url = `ws://${cfg.host}:${cfg.port}/realtime/v1`
  ctx.events.publish('realtime.started', { host: cfg.host, port: cfg.port, database: cfg.database })
  ctx.log.info({ url }, 'realtime serving')
  k.live.realtime = {
    url,
    database: cfg.database,
    hub: () => hub.status(),
    stream: () => stream.status(),
    backlog: () => hub.backlog(),
    commitToSend: () => ring.summary(),
    writer: () => ({ native: writer.native, detail: writer.detail, yieldsCpu: yieldCpu !== undefined }),
    droppedSlow: () => dropped,
    protocolErrors: () => protocolErrors,
  }

  // Housekeeping: silent sockets, failover following, the slot's WAL cap, gauges.
  const timer = setInterval(() => {
    hub.sweep(75_000)
    const s = hub.status()
    m.clients.set(s.clients)
    m.channels.set(s.channels)
    void (async () => {
      try {
        const p = instances.primary()
        const t = stream.target()
        if (t && t.name !== p.name) await stream.restart()
        const retained = await stream.enforceCap()
        if (retained !== null) m.retained.set(retained)
      } catch {
        // No primary during a failover: the stream's own loop retries.
      }
    })()
  }, 2000)
  timer.unref()

  return {
    async stop() {
      clearInterval(timer)
      k.live.realtime = undefined
      hub.closeAll(1001, 'server shutting down')
      await new Promise<void>((r) => {
        wss.close(() => r())
      })
      await new Promise<void>((r) => server.close(() => r()))
      await stream.stop()
      await pool?.end().catch(() => undefined)
    },
    health: () => {
      const st = stream.status()
      return { live: server.listening, ready: server.listening, detail: `${url}: ${hub.status().clients} clients; ${st.detail}` }
    },
  }
}

function metrics(ctx: ComponentContext<DaemonServices>) {
  const reg = ctx.metrics
  return {
    clients: gaugeOn(reg, { name: 'magflock_realtime_clients', help: 'Connected realtime WebSocket clients.' }),
    channels: gaugeOn(reg, { name: 'magflock_realtime_channels', help: 'Channel joins across all realtime clients.' }),
    retained: gaugeOn(reg, { name: 'magflock_realtime_slot_retained_bytes', help: 'WAL held back by the realtime replication slot.' }),
    changes: counterOn(reg, { name: 'magflock_realtime_changes_total', help: 'Row changes decoded from the realtime slot.' }),
    delivered: counterOn(reg, { name: 'magflock_realtime_messages_delivered_total', help: 'postgres_changes messages sent to clients.' }),
    dropped: counterOn(reg, { name: 'magflock_realtime_slow_consumers_dropped_total', help: 'Clients disconnected because their send buffer passed realtime.maxBufferedBytes.' }),
    protocolErrors: counterOn(reg, { name: 'magflock_realtime_protocol_errors_total', help: 'Malformed frames received (the socket is closed with 1007).' }),
    deliveryErrors: counterOn(reg, { name: 'magflock_realtime_delivery_errors_total', help: 'Changes skipped because their delivery failed (e.g. the RLS check could not run).' }),
    refused: counterOn(reg, { name: 'magflock_realtime_connections_refused_total', help: 'WebSocket upgrades refused for a missing, forged or expired token.' }),
    latency:
      (reg.getSingleMetric('magflock_realtime_commit_to_send_seconds') as Histogram | undefined) ??
      new Histogram({
        name: 'magflock_realtime_commit_to_send_seconds',
        help: 'From a transaction commit to its change written to client sockets.',
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [reg],
      }),
  }
}

/**
 * wal_level = logical on every running flock member. The instance config already carries it
 * (instanceSettings); an instance started before realtime was enabled is restarted once, under
 * the `topology` lock so that the failover monitor does not read the restart as a lost primary.
 */
async function ensureLogicalWal(ctx: ComponentContext<DaemonServices>, k: DaemonServices, instances: DaemonServices['instances']): Promise<void> {
  for (const inst of instances.members()) {
    if (inst.role === 'fenced') continue
    let level: string | undefined
    try {
      const c = new pg.Client({ ...(await inst.connection()), connectionTimeoutMillis: 3000 })
      c.on('error', () => undefined) // an idle client's dead server: the next query rejects instead
      await c.connect()
      try {
        level = (await c.query<{ wal_level: string }>('show wal_level')).rows[0]?.wal_level
      } finally {
        await c.end()
      }
    } catch {
      continue // not running: it starts with the new settings
    }
    if (level === 'logical' || level === undefined) continue
    const sup = instances.supervisor(inst.name)
    if (!sup) continue
    const release = k.locks.acquire('topology', 'realtime: restart for wal_level = logical')
    try {
      ctx.log.warn({ instance: inst.name, from: level }, 'restarting the instance once for wal_level = logical (realtime.enabled)')
      ctx.events.publish('realtime.wal_level_restart', { instance: inst.name, from: level })
      sup.spec.settings = instanceSettings(k.config())
      await sup.pauseSupervision()
      await stopInstance(sup.spec, 'fast')
      await sup.resumeSupervision()
    } finally {
      release()
    }
  }
}
