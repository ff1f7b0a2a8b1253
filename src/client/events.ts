import net from 'node:net'
import { http } from '../platform/http.js'
import { API_HOST, WireErrorSchema } from '../api/route.js'
import { MagflockError, type WireError } from '../errors/index.js'
import { BAD_RESPONSE, KERNEL_LOST, KERNEL_NOT_RUNNING, STATE_ACCESS } from './errors.js'

/**
 * Reader of GET /v1/events for the CLI and extensions written in TypeScript: calls `onLine`
 * for every line (events and stream.* control lines) in order, and resolves when the kernel
 * ends the stream. `signal` ends it from our side (resolves too).
 */
export interface EventStreamQuery {
  after?: number | undefined
  type?: string | undefined
  follow?: boolean | undefined
}

export interface StreamLine {
  seq?: number
  id?: string
  type: string
  time?: string
  data?: unknown
  error?: unknown
}

export function readEvents(opts: {
  socketPath: string
  stateDir: string
  token: string
  query: EventStreamQuery
  onLine: (line: StreamLine) => void
  signal?: AbortSignal
}): Promise<{ lines: number; closed?: StreamLine }> {
  const qs = new URLSearchParams()
  if (opts.query.after !== undefined) qs.set('after', String(opts.query.after))
  if (opts.query.type !== undefined) qs.set('type', opts.query.type)
  if (opts.query.follow) qs.set('follow', '1')
  const path = `/v1/events${qs.size > 0 ? `?${qs.toString()}` : ''}`
  return new Promise((resolve, reject) => {
    let lines = 0
    let closed: StreamLine | undefined
    let settled = false
    const done = (err?: unknown) => {
      if (settled) return
      settled = true
      if (err) reject(err)
      else resolve({ lines, ...(closed ? { closed } : {}) })
    }
    const req = http.request(
      { createConnection: () => net.connect(opts.socketPath), method: 'GET', path, headers: { host: API_HOST, authorization: `Bearer ${opts.token}` } },
      (res) => {
        res.setEncoding('utf8')
        let buf = ''
        if ((res.statusCode ?? 500) !== 200) {
          res.on('data', (c: string) => (buf += c))
          res.on('end', () => {
            try {
              const w = WireErrorSchema.safeParse((JSON.parse(buf) as { error?: unknown }).error)
              done(w.success ? MagflockError.fromWire(w.data as WireError) : BAD_RESPONSE({ route: path, reason: `HTTP ${res.statusCode}` }))
            } catch {
              done(BAD_RESPONSE({ route: path, reason: `HTTP ${res.statusCode} with a non-JSON body` }))
            }
          })
          return
        }
        const handle = (text: string) => {
          if (!text.trim()) return
          let line: StreamLine
          try {
            line = JSON.parse(text) as StreamLine
          } catch {
            done(BAD_RESPONSE({ route: path, reason: 'malformed event line' }))
            req.destroy()
            return
          }
          if (line.type === 'error') {
            const w = WireErrorSchema.safeParse(line.error)
            done(w.success ? MagflockError.fromWire(w.data as WireError) : BAD_RESPONSE({ route: path, reason: 'error without a code' }))
            return
          }
          if (line.type === 'stream.closed') closed = line
          lines++
          opts.onLine(line)
        }
        res.on('data', (chunk: string) => {
          buf += chunk
          let i: number
          while ((i = buf.indexOf('\n')) >= 0) {
            handle(buf.slice(0, i))
            buf = buf.slice(i + 1)
          }
        })
        res.on('end', () => {
          handle(buf)
          if (!res.complete && !opts.signal?.aborted) done(KERNEL_LOST({ stateDir: opts.stateDir, route: 'GET /v1/events', reason: 'the stream was cut before it ended' }))
          else done()
        })
        res.on('error', (err) => (opts.signal?.aborted ? done() : done(KERNEL_LOST({ stateDir: opts.stateDir, route: 'GET /v1/events', reason: 'the connection was reset' }, { cause: err }))))
      },
    )
    opts.signal?.addEventListener('abort', () => {
      req.destroy()
      done()
    })
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (opts.signal?.aborted) return done()
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') done(KERNEL_NOT_RUNNING({ stateDir: opts.stateDir, reason: err.code === 'ENOENT' ? 'no control socket' : 'socket refuses connections' }, { cause: err }))
      else if (err.code === 'EACCES' || err.code === 'EPERM') done(STATE_ACCESS({ path: opts.socketPath, op: 'connect to', reason: 'permission denied' }, { cause: err }))
      else done(KERNEL_LOST({ stateDir: opts.stateDir, route: 'GET /v1/events', reason: err.message }, { cause: err }))
    })
    req.end()
  })
}
