// Subscribers for bench/realtime.mjs's latency part, in a worker thread: their frame handling
// then does not delay the bench's own insert loop (the rate it asks for), as it did when the
// 1,000 clients shared the bench's event loop. workerData: { url, token, count, topics, config }.
//
// Each subscriber is a minimal WebSocket client on a plain TCP socket (RFC 6455 handshake,
// masked client frames, the vsn 2.0.0 join frame realtime-js sends): the bench measures the
// kernel, and 1,000 full `ws` clients decoding 500,000 frames/s would need more CPU than the
// kernel itself on this 2-core machine. Nine in ten only walk the frame headers to count
// frames; one in ten decodes each frame and takes receive time − commit_timestamp.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'
import { clearInterval, setInterval } from 'node:timers'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

const { url, token, count, topics, config } = workerData
const lat = []
let received = 0
const socks = []
const shared = Buffer.allocUnsafe(256 * 1024)
const target = new URL(url + token)

/** A masked client text frame (payloads here are short: < 64 KiB). */
function clientFrame(text) {
  const body = Buffer.from(text)
  const head = body.length < 126 ? 2 : 4
  const out = Buffer.alloc(head + 4 + body.length)
  out[0] = 0x81
  if (head === 2) out[1] = 0x80 | body.length
  else {
    out[1] = 0x80 | 126
    out.writeUInt16BE(body.length, 2)
  }
  const mask = randomBytes(4)
  mask.copy(out, head)
  for (let i = 0; i < body.length; i++) out[head + 4 + i] = body[i] ^ mask[i & 3]
  return out
}

/**
 * One subscriber. Reads go through net's \`onread\` into one buffer shared by every socket (the
 * callback runs synchronously, so a frame cut off at the end is copied out): no Buffer per read
 * and no stream machinery, the cheapest receive path Node has. Nine in ten only walk headers.
 */
function connect(topic, parse) {
  return new Promise((resolve, reject) => {
    let rest = null
    let upgraded = false
    let joined = false
    const s = net.connect({ port: Number(target.port), host: target.hostname, onread: { buffer: shared, callback: (n, chunk) => onData(n === chunk.length ? chunk : chunk.subarray(0, n)) } })
    s.setNoDelay(true)
    s.on('error', reject)
    s.on('connect', () => {
      s.write(
        `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      )
    })
    function onData(chunk) {
      // Receive time to the µs; commit_timestamp has ms resolution (as Supabase sends it), so
      // the commit is taken at the middle of its millisecond (error ±0.5 ms, none on average).
      const at = parse ? performance.timeOrigin + performance.now() : 0
      let buf = rest === null ? chunk : Buffer.concat([rest, chunk])
      rest = null
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) {
          rest = Buffer.from(buf)
          return
        }
        if (!buf.subarray(0, 12).toString().includes('101')) return reject(new Error(buf.subarray(0, end).toString()))
        upgraded = true
        buf = buf.subarray(end + 4)
        s.write(clientFrame(JSON.stringify(['1', '1', `realtime:${topic}`, 'phx_join', { config }])))
      }
      let o = 0
      for (;;) {
        if (buf.length - o < 2) break
        let len = buf[o + 1] & 0x7f
        let head = 2
        if (len === 126) {
          if (buf.length - o < 4) break
          len = buf.readUInt16BE(o + 2)
          head = 4
        } else if (len === 127) {
          if (buf.length - o < 10) break
          len = buf.readUInt32BE(o + 6)
          head = 10
        }
        if (buf.length - o < head + len) break
        if (!joined) {
          // The first frame after the join is its reply.
          joined = true
          resolve(s)
        } else {
          received++
          if (parse) {
            const m = /"commit_timestamp":"([^"]+)"/.exec(buf.toString('latin1', o + head, o + head + len))
            if (m) lat.push(at - (Date.parse(m[1]) + 0.5))
          }
        }
        o += head + len
      }
      // What is left (a frame cut off) is copied: the shared buffer is reused by the next read.
      if (o < buf.length) rest = Buffer.from(buf.subarray(o))
    }
  })
}

for (let i = 0; i < count; i++) socks.push(await connect(`${topics}${i % 50}`, i % 10 === 0))
const beat = clientFrame('[null,"h","phoenix","heartbeat",{}]')
const hb = setInterval(() => socks.forEach((s) => s.write(beat)), 20000)
// The receivers' own event-loop delay: frames waiting for this loop inflate the latency measured.
const loop = monitorEventLoopDelay({ resolution: 1 })
parentPort.postMessage({ type: 'ready' })
parentPort.on('message', (m) => {
  if (m === 'start') {
    // Counted from here: the frames of the run (not the system message each join gets).
    lat.length = 0
    received = 0
    loop.enable()
    return
  }
  if (m !== 'stop') return
  loop.disable()
  clearInterval(hb)
  socks.forEach((s) => s.destroy())
  const loopLag = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 }
  parentPort.postMessage({ type: 'done', lat, received, loopLag })
  parentPort.close()
})
