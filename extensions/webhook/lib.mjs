// The webhook extension's building blocks. Node built-ins only: an extension is installed
// without its dependencies being fetched, and it talks to the kernel only through the public
// extension API (its socket and token from the environment; docs/extensions.md).
/* global URLSearchParams */
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'

/** A client of the extension's own control socket. */
export function apiClient(env = process.env) {
  const socketPath = env.MAGFLOCK_EXT_SOCKET
  const token = env.MAGFLOCK_EXT_TOKEN
  if (!socketPath || !token) throw new Error('MAGFLOCK_EXT_SOCKET and MAGFLOCK_EXT_TOKEN must be set (the kernel sets them)')
  const headers = (extra = {}) => ({ host: 'magflock', authorization: `Bearer ${token}`, ...extra })
  return {
    /** One JSON call; rejects with the kernel's error code in err.code. */
    call(method, p, body) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body)
        const req = http.request({ socketPath, method, path: p, headers: headers(data ? { 'content-type': 'application/json' } : {}) }, (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (c) => (text += c))
          res.on('end', () => {
            let parsed
            try {
              parsed = text ? JSON.parse(text) : {}
            } catch {
              return reject(new Error(`bad response from the kernel (${res.statusCode})`))
            }
            if (res.statusCode >= 400) {
              const e = new Error(parsed.error?.message ?? `HTTP ${res.statusCode}`)
              e.code = parsed.error?.code
              e.status = res.statusCode
              return reject(e)
            }
            resolve(parsed)
          })
        })
        req.on('error', reject)
        if (data) req.write(data)
        req.end()
      })
    },
    /**
     * Reads GET /v1/events after `after` (following new ones unless follow is false), calling
     * onEvent(line) for each event in order (awaited: the next line waits). Resolves when the
     * kernel ends the stream, with the cursor to resume from.
     */
    follow({ after, types, signal, follow = true }, onEvent) {
      return new Promise((resolve, reject) => {
        const qs = new URLSearchParams({ follow: follow ? '1' : '0', type: types.join(',') })
        if (after !== undefined && after !== null) qs.set('after', String(after))
        let cursor = after
        let buf = ''
        let chain = Promise.resolve()
        const req = http.request({ socketPath, method: 'GET', path: `/v1/events?${qs}`, headers: headers(), signal }, (res) => {
          if (res.statusCode !== 200) {
            let text = ''
            res.on('data', (c) => (text += c))
            res.on('end', () => reject(Object.assign(new Error(`events stream refused: ${text.slice(0, 300)}`), { status: res.statusCode })))
            return
          }
          res.setEncoding('utf8')
          res.on('data', (chunk) => {
            buf += chunk
            let i
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i)
              buf = buf.slice(i + 1)
              if (!line.trim()) continue
              const ev = JSON.parse(line)
              chain = chain.then(async () => {
                if (typeof ev.seq === 'number') {
                  await onEvent(ev)
                  cursor = ev.seq
                } else if (ev.type === 'stream.closed' && typeof ev.data?.resumeAfter === 'number') cursor = Math.max(cursor ?? 0, ev.data.resumeAfter)
              })
              res.pause()
              chain.then(() => res.resume(), () => res.resume())
            }
          })
          res.on('end', () => chain.then(() => resolve(cursor), reject))
          res.on('error', (err) => chain.then(() => reject(err), reject))
        })
        req.on('error', (err) => chain.then(() => (signal?.aborted ? resolve(cursor) : reject(err)), reject))
        req.end()
      })
    },
  }
}

const sleepReal = (ms) => new Promise((r) => setTimeout(r, ms))

/** One POST; resolves { status } or rejects on a network error or the deadline. */
function post(url, payload, timeoutMs) {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const body = JSON.stringify(payload)
    const mod = u.protocol === 'https:' ? https : http
    const req = mod.request(u, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'magflock-webhook/1.0.0' } }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode }))
    })
    const t = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    req.on('close', () => clearTimeout(t))
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * Delivers one notification: retried on network errors, timeouts, 429 and 5xx with
 * exponential backoff (baseDelayMs × 2^attempt, capped at maxDelayMs); a 2xx delivers; any
 * other status is final (the receiver refused it). Returns { delivered, attempts, status?, error? }.
 */
export async function deliver(url, payload, { retries = 5, timeoutMs = 5000, baseDelayMs = 500, maxDelayMs = 30_000, sleep = sleepReal } = {}) {
  let last
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)))
    try {
      const r = await post(url, payload, timeoutMs)
      if (r.status >= 200 && r.status < 300) return { delivered: true, attempts: attempt + 1, status: r.status }
      last = { status: r.status }
      if (r.status !== 429 && r.status < 500) return { delivered: false, attempts: attempt + 1, status: r.status }
    } catch (err) {
      last = { error: err.message }
    }
  }
  return { delivered: false, attempts: retries + 1, ...last }
}

/**
 * Replica lag transitions: which replicas started lagging (over threshold) and which
 * recovered since the last check. Pure.
 */
export function lagTransitions(previouslyLagging, replicas, thresholdBytes) {
  const now = new Set()
  const started = []
  const recovered = []
  if (thresholdBytes <= 0) return { lagging: now, started, recovered }
  for (const r of replicas) {
    if (typeof r.lagBytes === 'number' && r.lagBytes > thresholdBytes) {
      now.add(r.name)
      if (!previouslyLagging.has(r.name)) started.push(r)
    }
  }
  for (const name of previouslyLagging) if (!now.has(name)) recovered.push(name)
  return { lagging: now, started, recovered }
}

/** The last event seq handled, kept in the state directory so a restart resumes there. */
export function cursorStore(dir) {
  const file = path.join(dir, 'cursor.json')
  return {
    read() {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')).after
      } catch {
        return undefined
      }
    },
    write(after) {
      fs.writeFileSync(`${file}.tmp`, JSON.stringify({ after }))
      fs.renameSync(`${file}.tmp`, file)
    },
  }
}
