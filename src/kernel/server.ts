import { http } from '../platform/http.js'
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import net from 'node:net'
import { promises as fsp } from 'node:fs'
import type { Logger } from 'pino'
import type { MagflockError} from '../errors/index.js';
import { INVALID_REQUEST, isMagflockError, INTERNAL } from '../errors/index.js'
import { API_HOST } from '../api/route.js'
import type { AuditWriter } from './component.js'
import { AuditUnavailable } from './audit.js'
import { AUDIT_UNAVAILABLE } from './errors.js'
import type { BoundRoute, KernelServices, RequestContext } from './services.js'
import { routeAllowed, type Principal, type PrincipalRole } from './grants.js'
import { BAD_HOST, FORBIDDEN, ROUTE_NOT_FOUND, SOCKET_IN_USE, UNAUTHENTICATED } from './errors.api.js'

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken | undefined>
}

/** A role token, or an extension token (role `extension`, with its extension and grants). */
export type VerifiedToken = { id: string; name: string; role: PrincipalRole; extension?: string; grants?: readonly string[] }

/**
 * Replaces the role check for a server whose tokens are not role tokens (an extension's own
 * socket): returns the refusal, which the server sends and audits like a 403.
 */
export type Authorizer = (principal: Principal, route: BoundRoute['def']) => { error: MagflockError; audit: boolean } | undefined

export interface ApiMetrics {
  apiRequest(route: string, method: string, status: number, seconds: number): void
}

const MAX_BODY = 1024 * 1024
const ALLOWED_HOSTS = new Set([API_HOST, 'localhost'])

/**
 * The control API: HTTP/1.1 + JSON on a Unix socket (0600). Each request is checked in this
 * order, and every refusal is a JSON error:
 *   Host/Origin/Sec-Fetch-* (a browser page reaching us through a local proxy is refused,
 *   and the refusal audited) →
 *   route → bearer token (401) → role (403) → body schema (400) → handler.
 * Mutating calls, and every 401/403, are appended to the audit log. A mutating call is
 * recorded twice: its intent (durable before the handler runs; when it cannot be written the
 * call is refused with E_AUDIT_UNAVAILABLE and nothing happens) and its outcome (ok/error,
 * pointing back at the intent's seq). A kernel killed mid-call leaves the intent.
 */
export class ControlServer<S = KernelServices> {
  private server: Server | undefined
  private readonly inflight = new Set<AbortController>()

  constructor(
    private readonly opts: {
      socketPath: string
      routes: Array<BoundRoute<S>>
      tokens: TokenVerifier
      /** The services handlers get; a function is asked at each request (a server opened while the kernel boots). */
      services: S | (() => S)
      audit: AuditWriter
      metrics: ApiMetrics
      log: Logger
      authorize?: Authorizer
    },
  ) {}

  async listen(): Promise<void> {
    await removeStaleSocket(this.opts.socketPath)
    const server = http.createServer((req, res) => void this.handle(req, res))
    server.keepAliveTimeout = 5_000
    this.server = server
    // The socket is created 0600 (umask), so no other user can connect in the window
    // between bind and chmod; the chmod states the intent.
    const oldMask = process.umask(0o177)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.opts.socketPath, () => resolve())
      })
    } finally {
      process.umask(oldMask)
    }
    await fsp.chmod(this.opts.socketPath, 0o600)
  }

  async close(): Promise<void> {
    for (const c of this.inflight) c.abort()
    const s = this.server
    if (!s) return
    // Let in-flight answers (e.g. the shutdown request's own) reach their callers, then
    // cut what is left after a grace period.
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => s.closeAllConnections(), 2_000)
      s.close(() => {
        clearTimeout(force)
        resolve()
      })
      s.closeIdleConnections()
    })
    await fsp.rm(this.opts.socketPath, { force: true })
  }

  /** One request, from the Unix socket or the mutual-TLS listener (src/tls/api-listener.ts). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint()
    const url = new URL(req.url ?? '/', 'http://magflock')
    const method = req.method ?? 'GET'
    let routeId = 'unknown'
    let status = 200
    const finish = () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      this.opts.metrics.apiRequest(routeId, method, status, seconds)
    }
    const sendError = (err: MagflockError) => {
      status = err.httpStatus
      if (!res.headersSent) {
        res.writeHead(status, { 'content-type': 'application/json' })
      }
      res.end(JSON.stringify({ error: err.toWire() }))
      finish()
    }

    const browser = browserShaped(req.headers)
    if (browser) {
      const bound = findRoute(this.opts.routes, method, url.pathname)?.bound
      const err = BAD_HOST({ host: browser.value, header: browser.header })
      await this.audit({
        actor: 'anonymous',
        action: bound?.def.id ?? 'unknown',
        result: 'denied',
        details: { code: err.code, header: browser.header, value: browser.value, method, path: url.pathname.slice(0, 200) },
      })
      sendError(err)
      return
    }
    const found = findRoute(this.opts.routes, method, url.pathname)
    const bound = found?.bound
    if (!found || !bound) {
      sendError(ROUTE_NOT_FOUND({ method, path: url.pathname }))
      return
    }
    const def = bound.def
    routeId = def.id

    const auth = req.headers.authorization ?? ''
    const m = auth.match(/^Bearer\s+(\S+)$/i)
    const token = m?.[1] ? await this.opts.tokens.verify(m[1]) : undefined
    if (!token) {
      const err = UNAUTHENTICATED({ reason: m ? 'unknown or revoked token' : 'no bearer token' })
      await this.audit({ actor: 'anonymous', action: def.id, result: 'denied', details: { code: err.code } })
      sendError(err)
      return
    }
    const principal: Principal = { role: token.role, tokenId: token.id, grants: token.grants ?? [] }
    if (token.extension !== undefined) principal.extension = token.extension
    // An extension's own socket has the broker as authorizer (src/extensions/broker.ts). A
    // flood of refusals (an extension over its rate limit) is audited once per window by the
    // authorizer's choice, so the audit log cannot be used to slow the kernel down.
    const refusal = this.opts.authorize
      ? this.opts.authorize(principal, def)
      : routeAllowed(principal, def)
        ? undefined
        : { error: FORBIDDEN({ role: token.role, route: def.id, allowed: def.roles }), audit: true }
    if (refusal) {
      const err = refusal.error
      if (refusal.audit) await this.audit({ actor: token.name, role: token.role, action: def.id, result: 'denied', details: { code: err.code } })
      sendError(err)
      return
    }

    let raw: unknown
    try {
      raw = method === 'GET' ? Object.fromEntries(url.searchParams) : await readJson(req)
      if (Object.keys(found.params).length > 0 && raw !== null && typeof raw === 'object') raw = { ...(raw as object), ...found.params }
    } catch (err) {
      sendError(isMagflockError(err) ? err : INVALID_REQUEST({ message: 'body is not valid JSON' }))
      return
    }
    const parsed = def.input.safeParse(raw ?? {})
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      sendError(INVALID_REQUEST({ message: `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}` }))
      return
    }

    let intentSeq: number | undefined
    if (def.mutating) {
      try {
        const seq = await this.opts.audit.append({
          actor: token.name,
          role: token.role,
          action: def.id,
          result: 'intent',
          details: { input: intentInput(parsed.data) },
        })
        intentSeq = typeof seq === 'number' ? seq : undefined
      } catch (err) {
        this.opts.log.error({ err, action: def.id }, 'audit append failed: call refused')
        sendError(AUDIT_UNAVAILABLE({ action: def.id, reason: err instanceof AuditUnavailable ? err.reason : String(err) }))
        return
      }
    }

    const abort = new AbortController()
    this.inflight.add(abort)
    res.on('close', () => {
      if (!res.writableFinished) abort.abort()
    })
    const ctx: RequestContext = {
      actor: { tokenId: token.id, name: token.name, role: token.role },
      principal,
      signal: abort.signal,
      auditDetails: {},
      progress: () => {},
    }
    const rawHead = () => {
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    }
    if (def.raw) {
      // The head goes out with the first line, so a handler that refuses before streaming
      // anything answers with a plain JSON error and its HTTP status.
      ctx.stream = {
        open: () => {
          if (!res.writableEnded && !res.destroyed) {
            rawHead()
            res.flushHeaders()
          }
        },
        write: (line) => {
          if (res.writableEnded || res.destroyed) return false
          rawHead()
          return res.write(JSON.stringify(line) + '\n')
        },
        drain: () =>
          new Promise<void>((resolve) => {
            if (res.writableLength === 0 || res.destroyed) return resolve()
            const done = () => {
              res.off('drain', done)
              res.off('close', done)
              resolve()
            }
            res.once('drain', done)
            res.once('close', done)
          }),
        bufferedBytes: () => res.writableLength,
        destroy: () => res.destroy(),
      }
    } else if (def.streaming) {
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
      ctx.progress = (ev) => {
        if (!res.writableEnded) res.write(JSON.stringify({ type: 'progress', ...ev }) + '\n')
      }
    }

    let result: unknown
    let failure: MagflockError | undefined
    try {
      const services = this.opts.services
      result = await bound.handler(parsed.data, ctx, typeof services === 'function' ? (services as () => S)() : services)
      const out = def.output.safeParse(result)
      if (!out.success) {
        this.opts.log.error({ route: def.id, issues: out.error.issues.slice(0, 3) }, 'handler returned an invalid response')
        failure = INTERNAL({ message: `route ${def.id} produced an invalid response` })
      } else result = out.data
    } catch (err) {
      failure = isMagflockError(err) ? err : INTERNAL({ message: err instanceof Error ? err.message : String(err) }, { cause: err })
      if (!isMagflockError(err)) this.opts.log.error({ err, route: def.id }, 'route handler failed')
    } finally {
      this.inflight.delete(abort)
    }

    if (def.mutating) {
      await this.audit({
        actor: token.name,
        role: token.role,
        action: def.id,
        result: failure ? 'error' : 'ok',
        details: { ...ctx.auditDetails, ...(intentSeq !== undefined ? { intent: intentSeq } : {}), ...(failure ? { code: failure.code } : {}) },
      })
    }

    if (def.raw && (res.headersSent || !failure)) {
      rawHead()
      if (failure && !res.writableEnded && !res.destroyed) res.write(JSON.stringify({ type: 'error', error: failure.toWire() }) + '\n')
      if (!res.writableEnded && !res.destroyed) res.end()
      status = failure ? failure.httpStatus : 200
      finish()
      return
    }
    if (def.streaming) {
      res.end(JSON.stringify(failure ? { type: 'error', error: failure.toWire() } : { type: 'result', data: result }) + '\n')
      status = failure ? failure.httpStatus : 200
      finish()
      return
    }
    if (failure) {
      sendError(failure)
      return
    }
    const body = JSON.stringify(result)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
    finish()
  }

  private async audit(rec: Parameters<AuditWriter['append']>[0]): Promise<void> {
    try {
      await this.opts.audit.append(rec)
    } catch (err) {
      // Denials and outcomes: the call was refused, or has already acted, so there is nothing
      // left to refuse (its intent record is durable). The failure is logged and counted
      // (magflock_audit_write_failures_total), and the next mutating call is refused.
      this.opts.log.error({ err, action: rec.action }, 'audit append failed')
    }
  }
}

/**
 * The route for a method and path. A path segment `:name` in a route's path matches any one
 * segment, handed to the handler as input field `name` (e.g. /v1/hooks/invocations/:invocationId).
 */
export function findRoute<S>(routes: Array<BoundRoute<S>>, method: string, pathname: string): { bound: BoundRoute<S>; params: Record<string, string> } | undefined {
  const exact = routes.find((r) => r.def.method === method && r.def.path === pathname)
  if (exact) return { bound: exact, params: {} }
  const parts = pathname.split('/')
  for (const r of routes) {
    if (r.def.method !== method || !r.def.path.includes('/:')) continue
    const want = r.def.path.split('/')
    if (want.length !== parts.length) continue
    const params: Record<string, string> = {}
    let ok = true
    for (let i = 0; i < want.length && ok; i++) {
      const w = want[i]!
      const p = parts[i]!
      if (w.startsWith(':')) {
        if (p.length === 0) ok = false
        else params[w.slice(1)] = decodeURIComponent(p)
      } else if (w !== p) ok = false
    }
    if (ok) return { bound: r, params }
  }
  return undefined
}

/**
 * What makes a request browser-shaped: a Host other than ours, any Origin, or any Fetch
 * Metadata header (Sec-Fetch-Site/-Mode/-Dest/-User…, which only browsers send). Returns the
 * header that gave it away, with its value cut to 200 printable characters for the audit log.
 */
export function browserShaped(headers: IncomingHttpHeaders): { header: string; value: string } | undefined {
  const clip = (v: unknown) => String(v).replace(/[^\x20-\x7e]/g, '?').slice(0, 200)
  const host = (headers.host ?? '').split(':')[0] ?? ''
  if (headers.host !== undefined && !ALLOWED_HOSTS.has(host)) return { header: 'host', value: clip(headers.host) }
  if (headers.origin !== undefined) return { header: 'origin', value: clip(headers.origin) }
  const fetchMeta = Object.keys(headers).find((h) => h.startsWith('sec-fetch-'))
  if (fetchMeta) return { header: fetchMeta, value: clip(headers[fetchMeta]) }
  return undefined
}

/** What a mutating call was asked to do, for its intent record: scalar inputs only, capped. */
function intentInput(data: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (data === null || typeof data !== 'object') return out
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v.length > 256 ? `${v.slice(0, 256)}…` : v
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) out[k] = v
  }
  return out
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        reject(INVALID_REQUEST({ message: `body larger than ${MAX_BODY} bytes` }))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      if (!text.trim()) return resolve({})
      try {
        resolve(JSON.parse(text))
      } catch {
        reject(INVALID_REQUEST({ message: 'body is not valid JSON' }))
      }
    })
    req.on('error', reject)
  })
}

/**
 * A socket file left by a kernel that died (kill -9) refuses connections; one that answers
 * belongs to a live kernel and must not be taken over.
 */
export async function removeStaleSocket(socketPath: string): Promise<'absent' | 'removed'> {
  try {
    await fsp.lstat(socketPath)
  } catch {
    return 'absent'
  }
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath)
    c.once('connect', () => {
      c.destroy()
      resolve(true)
    })
    c.once('error', () => resolve(false))
  })
  if (alive) throw SOCKET_IN_USE({ socket: socketPath })
  await fsp.rm(socketPath, { force: true })
  return 'removed'
}
