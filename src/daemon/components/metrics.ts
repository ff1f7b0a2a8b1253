import { http } from '../../platform/http.js'
import pg from 'pg'
import { defineComponent } from '../component.js'
import { PORT_IN_USE } from '../../errors/index.js'
import { registerPostgresCollector } from '../../telemetry/pg-stats.js'

/**
 * `metrics`: Prometheus exposition on 127.0.0.1:<metrics.port>/metrics. Per-instance figures
 * are read from pg_stat_database at scrape time through a short-lived connection.
 */
export const metricsComponent = defineComponent({
  name: 'metrics',
  requires: ['postgres'],
  restart: { policy: 'on-failure', maxRestarts: 3, windowMs: 60_000 },
  async start(ctx) {
    const k = ctx.services
    const instances = k.instances
    const port = k.config().metrics.port
    registerPostgresCollector(k.metrics, async () =>
      instances.list().map((i) => ({
        instance: i.name,
        role: i.role,
        query: async (sql: string) => {
          const c = new pg.Client({ ...(await i.connection()), connectionTimeoutMillis: 2000 })
          c.on('error', () => undefined) // a server that dies mid-scrape: the query rejects instead
          await c.connect()
          try {
            return await c.query(sql)
          } finally {
            await c.end()
          }
        },
      })),
    )
    const server = http.createServer(async (req, res) => {
      if (req.url !== '/metrics' || req.method !== 'GET') {
        res.writeHead(404).end('not found\n')
        return
      }
      try {
        const text = await k.metrics.metrics()
        res.writeHead(200, { 'content-type': k.metrics.contentType }).end(text)
      } catch (err) {
        res.writeHead(500).end(String(err))
      }
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? PORT_IN_USE({ port, what: 'metrics.port' }) : err),
      )
      server.listen({ port, host: '127.0.0.1' }, () => resolve())
    })
    return {
      stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
      health: () => ({ live: server.listening, ready: server.listening, detail: `serving http://127.0.0.1:${port}/metrics` }),
    }
  },
})
