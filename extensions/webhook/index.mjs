// MagFlock webhook extension: failovers, failed backups and replica lag → HTTP POST.
/* global setInterval */
import { apiClient, cursorStore, deliver, lagTransitions } from './lib.mjs'

const api = apiClient()
const log = (msg, fields = {}) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + '\n')

const { config } = await api.call('GET', '/v1/ext/self/config')
const { dir } = await api.call('GET', '/v1/ext/self/state')
const cursor = cursorStore(dir)
const TYPES = ['failover.*', 'switchover.completed', 'backup.failed']

async function notify(event, data, extra = {}) {
  const payload = { source: 'magflock', event, time: new Date().toISOString(), data, ...extra }
  const r = await deliver(config.url, payload, { retries: config.retries, timeoutMs: config.timeoutMs })
  log(r.delivered ? 'delivered' : 'dropped', { event, attempts: r.attempts, status: r.status, error: r.error })
}

// Replica lag: polled through replica.list; notified when a replica crosses the threshold and when it recovers.
let lagging = new Set()
async function checkLag() {
  try {
    const { replicas } = await api.call('GET', '/v1/replication')
    const t = lagTransitions(lagging, replicas ?? [], config.lagBytesThreshold)
    lagging = t.lagging
    for (const r of t.started) await notify('replica.lagging', { replica: r.name, lagBytes: r.lagBytes, lagSeconds: r.lagSeconds, thresholdBytes: config.lagBytesThreshold })
    for (const name of t.recovered) await notify('replica.lag_recovered', { replica: name })
  } catch (err) {
    log('lag check failed', { code: err.code, error: err.message })
  }
}
setInterval(() => void checkLag(), Math.max(1, config.lagCheckSeconds) * 1000)
void checkLag()

// Events: resume after the last handled seq (kept in the state dir), in order, none lost.
// First start: from the newest matching event the journal holds (0: none yet), so nothing
// published from here on is missed, and nothing older is sent.
let after = cursor.read()
if (after === undefined) {
  after = (await api.follow({ after: undefined, types: TYPES, follow: false }, async () => undefined)) ?? 0
  cursor.write(after)
}
log('started', { after, url: new URL(config.url).origin })
let backoff = 500
for (;;) {
  try {
    log('following', { after })
    after = await api.follow({ after, types: TYPES }, async (ev) => {
      await notify(ev.type, ev.data, { seq: ev.seq, eventId: ev.id, eventTime: ev.time })
      cursor.write(ev.seq)
    })
    backoff = 500
  } catch (err) {
    log('events stream failed', { error: err.message, retryInMs: backoff })
    await new Promise((r) => setTimeout(r, backoff))
    backoff = Math.min(backoff * 2, 30_000)
  }
}
