// Events out: kernel event → subscriber delivery latency over GET /v1/events (NDJSON on the
// control socket), with 1 and FOLLOWERS followers, and an extension-filtered follower.
//
//   npm run build && node_modules/.bin/node bench/events.mjs
//   (EVENTS=300 FOLLOWERS=20; kept short: the CPU is shared)
//
// The kernel runs as its own process (the built CLI's `kernel start`). Events are produced by
// POST /v1/config/reload (it publishes config.reloaded just before it answers). Per event:
//   delivery  = line received − the event's `time` (set when the bus accepted it; ms resolution,
//               so each sample is up to 1 ms high);
//   request → event line vs request → HTTP response of the same call (the baseline, same run).
// Writes docs/benchmarks/events.md.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fmt, freePort, log, machine, NODE, ROOT, stats, tmp, writeSection } from './lib.mjs'

const EVENTS = Number(process.env.EVENTS ?? 300)
const FOLLOWERS = Number(process.env.FOLLOWERS ?? 20)
const now = () => performance.timeOrigin + performance.now()

const dir = tmp('mf-bench-ev-')
writeFileSync(path.join(dir, 'magflock.yaml'), `postgres:\n  port: ${await freePort()}\nmetrics:\n  enabled: false\nbackup:\n  walArchiving: false\n`)
const env = { ...process.env, MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 5).toString('base64'), MAGFLOCK_PREFS_DIR: path.join(dir, '.prefs') }
const cli = (args) => JSON.parse(execFileSync(NODE, [path.join(ROOT, 'bin/run.js'), ...args, '--json'], { cwd: dir, env, encoding: 'utf8' })).data
const socketPath = path.join(dir, '.magflock/kernel.sock')

const loadStart = os.loadavg()[0]
log('starting a kernel')
cli(['kernel', 'start'])
const info = JSON.parse(readFileSync(path.join(dir, '.magflock/kernel.json'), 'utf8'))
const admin = readFileSync(path.join(dir, '.magflock/admin.token'), 'utf8').trim()

function request(method, p, token, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({ socketPath: info.socket ?? socketPath, method, path: p, headers: { host: 'magflock', authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', reject)
    if (data) req.write(data)
    req.end()
  })
}

/** A follower: resolves once connected; onLine(line, receivedAt). */
function follow(token, query, onLine) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: info.socket ?? socketPath, method: 'GET', path: `/v1/events?follow=1${query}`, headers: { host: 'magflock', authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`follow: HTTP ${res.statusCode}`))
      res.setEncoding('utf8')
      let buf = ''
      res.on('data', (c) => {
        const at = now()
        buf += c
        let i
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i)
          buf = buf.slice(i + 1)
          if (line) onLine(JSON.parse(line), at)
        }
      })
      resolve(req)
    })
    req.on('error', reject)
    req.end()
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** EVENTS reloads, one at a time; returns per-event samples as seen by the measured follower. */
async function run(followers, token = admin, query = '&type=config.reloaded') {
  const pending = new Map()
  const delivery = []
  const toEvent = []
  const toResponse = []
  let seen = 0
  let waiting
  const reqs = []
  reqs.push(
    await follow(token, query, (line, at) => {
      if (line.type !== 'config.reloaded') return
      seen++
      delivery.push(at - Date.parse(line.time))
      const t0 = pending.get('t0')
      if (t0 !== undefined) toEvent.push(at - t0)
      waiting?.()
    }),
  )
  for (let i = 1; i < followers; i++) reqs.push(await follow(admin, '&type=config.reloaded', () => {}))
  await sleep(200)
  for (let i = 0; i < EVENTS; i++) {
    const before = seen
    const got = new Promise((r) => (waiting = r))
    const t0 = now()
    pending.set('t0', t0)
    const r = await request('POST', '/v1/config/reload', admin, {})
    toResponse.push(now() - t0)
    if (r.status !== 200) throw new Error(`reload: ${r.status} ${r.text}`)
    if (seen === before) await got
  }
  for (const r of reqs) r.destroy()
  return { delivery: stats(delivery), toEvent: stats(toEvent), toResponse: stats(toResponse) }
}

log(`1 follower, ${EVENTS} events`)
const one = await run(1)
log(`${FOLLOWERS} followers`)
const many = await run(FOLLOWERS)
// An extension token whose grants cover config.* only.
const tokensFile = path.join(dir, '.magflock/tokens.json')
const { TokenStore } = await import(path.join(ROOT, 'dist/kernel/tokens.js'))
const extToken = (await new TokenStore(tokensFile).create({ role: 'extension', name: 'bench-ext', extension: 'bench', grants: ['events:subscribe:config.*'] })).token
log('extension follower')
const ext = await run(1, extToken, '')
const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${info.pid}/status`, 'utf8'))[1])
cli(['kernel', 'stop'])

/** One sentence on the target, with what the machine was doing. */
function verdict() {
  const worst = Math.max(one.delivery.p99, many.delivery.p99, ext.delivery.p99)
  const load = `load average ${loadStart.toFixed(1)} at the start and ${os.loadavg()[0].toFixed(1)} at the end on ${os.cpus().length} cores`
  if (worst < 10) return `Target met: delivery p99 below 10 ms in every row (${load}).`
  return `Target not met in this run: worst delivery p99 ${fmt(worst)} (${load}). The p50 is the cost of the path itself; the tail follows the machine's load: the baseline HTTP answers of the same calls have a p99 of ${fmt(one.toResponse.p99)} (1 follower). Rerun on a quiet machine before drawing a conclusion.`
}

const ms = (x) => fmt(x)
const row = (name, s) => [name, ms(s.delivery.p50), ms(s.delivery.p99), ms(s.toEvent.p50), ms(s.toEvent.p99), ms(s.toResponse.p50), ms(s.toResponse.p99)]
const md = `## Events out (GET /v1/events)

\`npm run build && node_modules/.bin/node bench/events.mjs\` — ${machine()}, load average ${os.loadavg()[0].toFixed(1)} at the end, ${EVENTS} events per row

| follower(s) | delivery p50 | delivery p99 (target < 10 ms) | request → event line p50 | p99 | baseline: request → HTTP response p50 | p99 |
|---|---|---|---|---|---|---|
${[row('1 admin follower', one), row(`${FOLLOWERS} admin followers (measured: the first)`, many), row('1 extension follower (grant events:subscribe:config.*)', ext)].map((r) => `| ${r.join(' | ')} |`).join('\n')}

Delivery is measured from the event's \`time\` (when the bus accepted it, millisecond resolution,
so every sample reads up to 1 ms high) to the moment the follower's socket delivered the line.
Each event is journaled (a synchronous append to <state>/events/) before any follower sees it,
so the figure includes the disk write. The baseline is the same reload call's own HTTP answer:
the event line and the answer leave the kernel within the same turn of its loop. Kernel RSS at
the end: ${(rssKb / 1024).toFixed(0)} MiB.

${verdict()}
`
writeSection('events', md)
console.log(md)
