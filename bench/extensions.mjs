// The extension plane: broker overhead, install + enable, and a kernel with 10 idle extensions.
//
//   npm run build && node bench/extensions.mjs          # N=300 by default; needs root (OS users)
//
// One in-process kernel (the built dist/). (1) The same cheap route (pooler.status, pooler
// disabled) called N times by an admin on the kernel socket and by an extension (granted
// api:call:pooler.status) on its own socket, interleaved, paced under the extension's rate
// limit: p50/p99 of each and the difference = the broker's overhead. (2) `ext install` +
// enable of a small extension until it runs, 3 times. (3) `status` latency (N calls) and the
// kernel process's RSS with no extension, then with 10 idle ones. Writes docs/benchmarks/extensions.md.
import http from 'node:http'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { fmt, freePort, log, machine, mergeBenchmarks, stats, table, tmp, writeSection } from './lib.mjs'

const DIST = process.env.MAGFLOCK_DIST ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist')
const N = Number(process.env.N ?? 300)
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href)
const { startKernel } = await load('daemon/boot.js')
const { KernelClient } = await load('client/index.js')
const ext = await load('api/extensions.js')
const core = await load('api/core.js')

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 7).toString('base64')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function get(socketPath, token, p) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const req = http.request({ socketPath, path: p, headers: { host: 'magflock', authorization: `Bearer ${token}` } }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`${p}: HTTP ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end()
  })
}

function idleExtension(root, name, caps = []) {
  const d = path.join(root, `src-${name}`)
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'idle.mjs'), 'setInterval(() => {}, 1 << 30)\n')
  writeFileSync(path.join(d, 'magflock-extension.json'), JSON.stringify({ name, version: '1.0.0', entry: ['node', './idle.mjs'], capabilities: caps, memoryMb: 64 }))
  return d
}

const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024

const dir = tmp('mf-bench-ext-')
writeFileSync(path.join(dir, 'magflock.yaml'), `postgres:\n  port: ${await freePort()}\n  settings:\n    fsync: "off"\nmetrics:\n  enabled: false\nreplication:\n  basePort: ${await freePort()}\nbackup:\n  walArchiving: false\n`)
const k = await startKernel({ stateDir: path.join(dir, '.magflock'), projectDir: dir })
const admin = new KernelClient(k.services.layout)
const adminToken = admin.token()
const sock = k.services.layout.socket
try {
  // (3a) status and RSS with no extension.
  const statusSamples = async () => {
    const s = []
    for (let i = 0; i < N; i++) s.push(await get(sock, adminToken, '/v1/status'))
    return stats(s)
  }
  await statusSamples() // warm-up
  const none = { status: await statusSamples(), rss: process.memoryUsage().rss / 2 ** 20 }
  log(`no extensions: status p50 ${fmt(none.status.p50)} p99 ${fmt(none.status.p99)}, kernel RSS ${none.rss.toFixed(0)} MiB`)

  // (2) install + enable until running.
  const installs = []
  for (let i = 0; i < 3; i++) {
    const name = `bench-inst${i}`
    const t0 = process.hrtime.bigint()
    await admin.call(ext.extInstall, { source: idleExtension(dir, name), enable: true })
    for (;;) {
      const e = (await admin.call(ext.extList, {})).extensions.find((x) => x.name === name)
      if (e?.state === 'running') break
      await sleep(5)
    }
    installs.push(Number(process.hrtime.bigint() - t0) / 1e6)
    await admin.call(ext.extRemove, { name })
  }
  const inst = stats(installs)
  log(`install+enable: median ${fmt(inst.p50)}`)

  // (1) broker overhead.
  await admin.call(ext.extInstall, { source: idleExtension(dir, 'bench-caller', ['api:call:pooler.status']), grants: ['api:call:pooler.status'], enable: true })
  let pid
  for (;;) {
    pid = (await admin.call(ext.extList, {})).extensions.find((x) => x.name === 'bench-caller')?.pid
    if (pid) break
    await sleep(20)
  }
  const token = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((l) => l.startsWith('MAGFLOCK_EXT_TOKEN='))?.split('=')[1]
  const extSock = path.join(k.services.layout.root, 'extensions/bench-caller/api.sock')
  const a = []
  const x = []
  for (let i = 0; i < N + 20; i++) {
    // Alternate which goes first: the first call after the pause pays for a cold loop.
    let ta, tx
    if (i % 2 === 0) {
      ta = await get(sock, adminToken, '/v1/pooler')
      tx = await get(extSock, token, '/v1/pooler')
    } else {
      tx = await get(extSock, token, '/v1/pooler')
      ta = await get(sock, adminToken, '/v1/pooler')
    }
    if (i >= 20) {
      a.push(ta)
      x.push(tx)
    }
    await sleep(12) // under 100 calls/s
  }
  const sa = stats(a)
  const sx = stats(x)
  log(`pooler.status admin p50 ${sa.p50.toFixed(3)} ms, extension p50 ${sx.p50.toFixed(3)} ms`)
  await admin.call(ext.extRemove, { name: 'bench-caller' })

  // (3b) 10 idle extensions.
  for (let i = 0; i < 10; i++) await admin.call(ext.extInstall, { source: idleExtension(dir, `bench-idle${i}`), enable: true })
  await sleep(1000)
  const list = (await admin.call(ext.extList, {})).extensions
  const extRss = list.reduce((sum, e) => sum + (e.pid ? rssOf(e.pid) : 0), 0)
  await statusSamples()
  const ten = { status: await statusSamples(), rss: process.memoryUsage().rss / 2 ** 20 }
  log(`10 extensions: status p50 ${fmt(ten.status.p50)} p99 ${fmt(ten.status.p99)}, kernel RSS ${ten.rss.toFixed(0)} MiB, extensions ${extRss.toFixed(0)} MiB`)
  await admin.call(core.status, {})
  for (const e of list) await admin.call(ext.extRemove, { name: e.name })

  const md = `## Extensions

\`npm run build && node bench/extensions.mjs\` (N=${N}) — ${machine()}. One in-process kernel; the
extension side runs as its own OS user on its own socket, through the broker (token check, rate
limit, grant check). Target: broker overhead < 0.5 ms p50; \`status\` p99 with 10 idle
extensions within 10% of none.

${table(
  ['', 'admin, kernel socket', 'extension, its socket (broker)', 'difference'],
  [
    ['pooler.status p50', `${sa.p50.toFixed(3)} ms`, `${sx.p50.toFixed(3)} ms`, `${(sx.p50 - sa.p50).toFixed(3)} ms`],
    ['pooler.status p99', `${sa.p99.toFixed(3)} ms`, `${sx.p99.toFixed(3)} ms`, `${(sx.p99 - sa.p99).toFixed(3)} ms`],
  ],
)}

${table(
  ['', 'no extensions', '10 idle extensions', 'ratio'],
  [
    ['status p50', fmt(none.status.p50), fmt(ten.status.p50), `${(ten.status.p50 / none.status.p50).toFixed(2)}×`],
    ['status p99', fmt(none.status.p99), fmt(ten.status.p99), `${(ten.status.p99 / none.status.p99).toFixed(2)}×`],
    ['kernel RSS', `${none.rss.toFixed(0)} MiB`, `${ten.rss.toFixed(0)} MiB`, `${(ten.rss / none.rss).toFixed(2)}×`],
    ['extension processes RSS', '–', `${extRss.toFixed(0)} MiB (10 processes)`, ''],
  ],
)}

\`ext install\` + enable of a small Node extension until it runs (OS user created, files copied
and chowned, socket, cgroup, process started): median ${fmt(inst.p50)} (min ${fmt(inst.min)}, 3 runs).

p99 of a few hundred calls on a shared 2-core machine is dominated by scheduling noise (other jobs ran during this run): compare p50 as well, and rerun on a quiet machine before reading the p99 ratio.
`
  writeSection('extensions', md)
  mergeBenchmarks()
  console.log(md)
} finally {
  await k.shutdown({ keepPostgres: false, reason: 'bench' })
}
