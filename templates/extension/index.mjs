// A MagFlock extension skeleton (docs/extensions.md, "Writing an extension").
// It runs as its own OS user, cwd = its state directory, and reaches the kernel only through
// its own socket with its scoped token, both given in its environment.
/* global URLSearchParams, setInterval */
import http from 'node:http'

const socketPath = process.env.MAGFLOCK_EXT_SOCKET
const token = process.env.MAGFLOCK_EXT_TOKEN
const log = (msg, fields = {}) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + '\n')

function request(method, path, body, onLine) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({ socketPath, method, path, headers: { host: 'magflock', authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => {
        text += c
        if (!onLine) return
        let i
        while ((i = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, i)
          text = text.slice(i + 1)
          if (line.trim()) onLine(JSON.parse(line))
        }
      })
      res.on('end', () => {
        const parsed = text.trim() ? JSON.parse(text) : {}
        if (res.statusCode >= 400) reject(Object.assign(new Error(parsed.error?.message ?? `HTTP ${res.statusCode}`), { code: parsed.error?.code }))
        else resolve(parsed)
      })
    })
    req.on('error', reject)
    if (data) req.write(data)
    req.end()
  })
}

const me = await request('GET', '/v1/ext/self')
const { config } = await request('GET', '/v1/ext/self/config') // needs config:read
log('started', { name: me.name, grants: me.grants, greeting: config.greeting })

// Stay within heartbeatSeconds: any API call counts.
setInterval(() => void request('GET', '/v1/ext/self').catch((err) => log('heartbeat failed', { code: err.code })), 30_000)

// Events this extension was granted (events:subscribe:backup.*), followed from now on.
let after = 0
for (;;) {
  const qs = new URLSearchParams({ follow: '1', type: 'backup.*', after: String(after) })
  await request('GET', `/v1/events?${qs}`, undefined, (ev) => {
    if (typeof ev.seq !== 'number') return
    after = ev.seq
    log('event', { type: ev.type, seq: ev.seq })
  }).catch((err) => log('events stream ended', { code: err.code, error: err.message }))
  await new Promise((r) => setTimeout(r, 1000))
}
