// A writer thread for bench/realtime.mjs's fan-out part (FANOUT_THREADS > 1): a prototype of
// the hub's socket writes spread over threads. Each thread runs its own Hub (the built
// src/realtime/hub.ts) behind its own ws server listening on the same port with SO_REUSEPORT
// (net `listen({ reusePort: true })`, Node >= 22.12), so the kernel hands each new connection
// to one of them and each thread writes only its own sockets (a socket cannot move between
// threads). The bench's main thread posts every change to every thread (here as
// [seq, commitTime] pairs: each thread builds the change's frame itself; a product would post
// the encoded bytes once). workerData: { port, hubUrl }.
import http from 'node:http'
import { parentPort, workerData } from 'node:worker_threads'
import { WebSocketServer } from 'ws'

const { Hub } = await import(workerData.hubUrl)
// The kernel's default writer, as the one-thread rounds use (a Node-API addon loads per thread).
const { loadNativeWrites } = await import(new URL('native.js', workerData.hubUrl).href)
const rel = { oid: 1, schema: 'public', table: 'bench', replicaIdentity: 'd', primaryKey: ['id'], columns: [{ name: 'id', typeOid: 20, type: 'int8', key: true }, { name: 'v', typeOid: 23, type: 'int4', key: false }, { name: 'pad', typeOid: 25, type: 'text', key: false }] }
const hub = new Hub({
  maxBufferedBytes: 8 << 20,
  maxChannelsPerClient: 10,
  publication: 'p',
  verify: () => ({ ok: false, reason: 'malformed', message: 'unused' }),
  visibleBatch: async () => [],
  visibleGroupsCached: (_ch, groups) => new Set(groups.map((g) => g.key)),
  roleExists: async () => true,
  published: async () => true,
  nativeWrites: loadNativeWrites().writes,
  yieldCpu: loadNativeWrites().writes?.yieldCpu,
})
const server = http.createServer()
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen({ port: workerData.port, host: '127.0.0.1', reusePort: true }, resolve)
})
const wss = new WebSocketServer({ server, perMessageDeflate: false })
wss.on('connection', (ws) => hub.attach(ws, '2.0.0', { role: 'postgres', exp: 2e9 }))
parentPort.postMessage({ type: 'listening' })
parentPort.on('message', (m) => {
  if (m.type === 'changes') {
    for (let k = 0; k < m.changes.length; k += 2) {
      const i = m.changes[k]
      hub.deliver({ type: 'INSERT', relation: rel, record: { id: String(i), v: String(i), pad: null }, oldRecord: null, commitTime: m.changes[k + 1] })
    }
  } else if (m.type === 'status') {
    parentPort.postMessage({ type: 'status', clients: hub.status().clients, cpu: process.threadCpuUsage() })
  } else if (m.type === 'close') {
    hub.closeAll(1001, 'bench done')
    wss.close()
    server.close(() => parentPort.postMessage({ type: 'closed' }))
  }
})
