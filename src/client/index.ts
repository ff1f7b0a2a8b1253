import net from 'node:net'
import { http } from '../platform/http.js'
import { existsSync, readFileSync } from 'node:fs'
import type { z } from 'zod'
import { MagflockError, type WireError } from '../errors/index.js'
import type { StateLayout } from '../platform/paths.js'
import { API_HOST, type LazyRoute } from '../api/route-meta.js'
import type * as WireSchemas from '../api/route.js'
import type { ProgressEvent, RouteDef } from '../api/route.js'
import type { RemoteTransport } from '../tls/remote.js'
import { BAD_RESPONSE, KERNEL_LOST, KERNEL_NOT_RUNNING, STATE_ACCESS, TOKEN_MISSING, stateAccessError } from './errors.js'

/**
 * The wire schemas (progress events, errors) with zod: loaded when a call streams, fails, or
 * already had its contract loaded, so a successful call through a LazyRoute loads no zod.
 */
type Wire = typeof WireSchemas
let wire: Promise<Wire> | undefined
const loadWire = (): Promise<Wire> => (wire ??= import('../api/route.js'))

export interface CallOptions {
  onProgress?: (e: ProgressEvent) => void
  timeoutMs?: number
}

/**
 * Typed control-API client over the kernel's Unix socket. Failing to reach the kernel gives
 * E_KERNEL_NOT_RUNNING with a hint, never a raw ECONNREFUSED; a kernel that dies after the
 * request went out (connection reset, or closed before the whole response arrived) gives
 * E_KERNEL_LOST (exit 7): the command may or may not have taken effect.
 */
export class KernelClient {
  constructor(
    readonly layout: StateLayout,
    private readonly opts: { token?: string | undefined; socket?: string; remote?: RemoteTransport | undefined } = {},
  ) {}

  get socketPath(): string {
    return this.opts.socket ?? this.layout.socket
  }

  token(): string {
    if (this.opts.token) return this.opts.token
    if (this.opts.remote) throw this.opts.remote.missingToken()
    try {
      return readFileSync(this.layout.adminToken, 'utf8').trim()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateAccessError(err) ?? err
      // No kernel ever ran here: that is the diagnosis, not the missing token.
      if (!existsSync(this.socketPath)) throw KERNEL_NOT_RUNNING({ stateDir: this.layout.root, reason: 'no control socket' })
      throw TOKEN_MISSING({ file: this.layout.adminToken })
    }
  }

  /**
   * Calls a route. With a full contract (RouteDef) the response is checked against its schema;
   * with a LazyRoute it is checked only for a remote kernel (which may run another version):
   * a local kernel is this build, and it has checked the response against the same contract
   * before sending it.
   */
  async call<I extends z.ZodType, O extends z.ZodType>(
    route: RouteDef<I, O> | LazyRoute<RouteDef<I, O>>,
    input: z.input<I>,
    opts: CallOptions = {},
  ): Promise<z.infer<O>> {
    const token = this.token()
    const contract = 'output' in route ? route : this.opts.remote ? await route.contract() : undefined
    const w = contract || route.streaming || route.raw ? await loadWire() : undefined
    const body = route.method === 'GET' ? undefined : JSON.stringify(input ?? {})
    let path = route.path
    if (route.method === 'GET' && input && Object.keys(input).length > 0) {
      const qs = new URLSearchParams()
      for (const [k, v] of Object.entries(input as Record<string, unknown>)) if (v !== undefined) qs.set(k, String(v))
      path += `?${qs.toString()}`
    }
    const raw = await this.request(route.method, path, token, body, opts, w)
    if (!contract) return raw as z.infer<O>
    const parsed = contract.output.safeParse(raw)
    if (!parsed.success) throw BAD_RESPONSE({ route: route.id, reason: parsed.error.issues[0]?.message ?? 'invalid' })
    return parsed.data
  }

  private request(method: string, path: string, token: string, body: string | undefined, opts: CallOptions, w: Wire | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const lost = (reason: string, cause?: unknown) =>
        KERNEL_LOST({ stateDir: this.layout.root, route: `${method} ${path.split('?')[0]}`, reason }, { cause })
      let sent = false
      const req = http.request(
        {
          // Our own connection instead of socketPath: no http.Agent, whose server-name
          // check compiles Node's IPv6 regex on the first request (a few ms of every call).
          createConnection: () => (this.opts.remote ? this.opts.remote.connect() : net.connect(this.socketPath)),
          method,
          path,
          headers: {
            host: API_HOST,
            authorization: `Bearer ${token}`,
            ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          },
          timeout: opts.timeoutMs ?? 0,
        },
        (res) => {
          res.setEncoding('utf8')
          const streaming = (res.headers['content-type'] ?? '').includes('ndjson')
          let buf = ''
          let settled = false
          const handleLine = (line: string) => {
            if (!line.trim() || settled) return
            let ev: { type?: string; data?: unknown; error?: unknown }
            try {
              ev = JSON.parse(line)
            } catch {
              settled = true
              reject(BAD_RESPONSE({ route: path, reason: 'malformed event line' }))
              return
            }
            if (!w) {
              // Only routes declared streaming answer with NDJSON, and for those `w` is loaded.
              settled = true
              reject(BAD_RESPONSE({ route: path, reason: 'an event stream from a route not declared streaming' }))
            } else if (ev.type === 'progress') {
              const p = w.ProgressEvent.safeParse(ev)
              if (p.success) opts.onProgress?.(p.data)
            } else if (ev.type === 'result') {
              settled = true
              resolve(ev.data)
            } else if (ev.type === 'error') {
              settled = true
              reject(toError(w, ev.error, path))
            }
          }
          res.on('data', (chunk: string) => {
            buf += chunk
            if (!streaming) return
            let i: number
            while ((i = buf.indexOf('\n')) >= 0) {
              handleLine(buf.slice(0, i))
              buf = buf.slice(i + 1)
            }
          })
          res.on('end', () => {
            if (!res.complete) {
              if (!settled) reject(lost('the connection closed before the whole response arrived'))
              settled = true
              return
            }
            if (streaming) {
              handleLine(buf)
              if (!settled) reject(BAD_RESPONSE({ route: path, reason: 'stream ended without a result' }))
              return
            }
            let json: unknown
            try {
              json = JSON.parse(buf)
            } catch {
              reject(BAD_RESPONSE({ route: path, reason: `HTTP ${res.statusCode} with a non-JSON body` }))
              return
            }
            if ((res.statusCode ?? 500) >= 400) {
              const error = (json as { error?: unknown }).error
              loadWire().then((lw) => reject(toError(lw, error, path)), reject)
            }
            else resolve(json)
          })
          // The socket closed or was reset mid-response: the kernel died while answering.
          res.on('error', (err) => {
            if (!settled) reject(lost('the connection was reset mid-response', err))
            settled = true
          })
          res.on('aborted', () => {
            if (!settled) reject(lost('the connection closed mid-response'))
            settled = true
          })
        },
      )
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (this.opts.remote) reject(this.opts.remote.mapError(err))
        else if ((err.code === 'ECONNRESET' || err.code === 'EPIPE') && sent) {
          // The request went out and no response came: the kernel died while handling it.
          reject(lost('the connection was closed or reset before a response', err))
        } else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
          reject(KERNEL_NOT_RUNNING({ stateDir: this.layout.root, reason: 'the kernel closed the connection (stopping or crashed)' }, { cause: err }))
        } else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') {
          reject(KERNEL_NOT_RUNNING({ stateDir: this.layout.root, reason: err.code === 'ENOENT' ? 'no control socket' : 'socket refuses connections' }, { cause: err }))
        } else if (err.code === 'EACCES' || err.code === 'EPERM') {
          reject(STATE_ACCESS({ path: this.socketPath, op: 'connect to', reason: 'permission denied' }, { cause: err }))
        } else reject(stateAccessError(err) ?? err)
      })
      req.on('socket', (sock) => {
        if (!sock.connecting) sent = true // a kept-alive socket, already connected
        else sock.once('connect', () => (sent = true))
      })
      if (body !== undefined) req.write(body)
      req.end()
    })
  }
}

function toError(wireSchemas: Wire, raw: unknown, route: string): MagflockError {
  const w = wireSchemas.WireErrorSchema.safeParse(raw)
  if (!w.success) return BAD_RESPONSE({ route, reason: 'error without a code' })
  return MagflockError.fromWire(w.data as WireError)
}
