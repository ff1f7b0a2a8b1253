// Subscribers for bench/realtime.mjs's latency part, in a worker thread: their frame handling
// then does not delay the bench's own insert loop (the rate it asks for), as it did when the
// 1,000 clients shared the bench's event loop. workerData: { url, token, count, topics, config }.
import { parentPort, workerData } from 'node:worker_threads'
import { clearInterval, setInterval } from 'node:timers'
import WebSocket from 'ws'

const { url, token, count, topics, config } = workerData
const lat = []
let received = 0
const socks = []

function connect(topic, parse) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url + token, { perMessageDeflate: false })
    ws.on('error', reject)
    ws.on('open', () => ws.send(JSON.stringify(['1', '1', `realtime:${topic}`, 'phx_join', { config }])))
    let joined = false
    ws.on('message', (data) => {
      if (!joined) {
        if (data.toString().includes('"phx_reply"')) {
          joined = true
          resolve(ws)
        }
        return
      }
      received++
      // One client in ten parses the commit timestamp (receive time − commit time, ms clock).
      if (!parse) return
      const at = Date.now()
      const m = /"commit_timestamp":"([^"]+)"/.exec(data.toString())
      if (m) lat.push(at - Date.parse(m[1]))
    })
  })
}

for (let i = 0; i < count; i++) socks.push(await connect(`${topics}${i % 50}`, i % 10 === 0))
const hb = setInterval(() => socks.forEach((s) => s.readyState === 1 && s.send('[null,"h","phoenix","heartbeat",{}]')), 20000)
parentPort.postMessage({ type: 'ready' })
parentPort.on('message', (m) => {
  if (m !== 'stop') return
  clearInterval(hb)
  socks.forEach((s) => s.terminate())
  parentPort.postMessage({ type: 'done', lat, received })
  parentPort.close()
})
