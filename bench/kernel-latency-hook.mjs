// Where the control API's tail goes, seen from inside the kernel: `NODE_OPTIONS=--import=<this
// file>` (absolute path) and LATENCY_OUT=<file>. Only the kernel daemon process records: GC
// pauses (count, sum, max by kind), the event-loop delay histogram, and each request's time in
// the kernel (from the server's 'request' event to the response's 'finish'). On SIGUSR2 it
// writes the figures since the last signal as one JSON line to LATENCY_OUT and starts over.
import { PerformanceObserver, monitorEventLoopDelay, constants } from 'node:perf_hooks'
import { appendFileSync } from 'node:fs'
import http from 'node:http'

const out = process.env.LATENCY_OUT
if (out && process.argv.some((a) => a.endsWith('entry.js')) && process.argv.includes('--state-dir')) {
  const kinds = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' }
  let gc = {}
  let req = []
  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = kinds[e.detail?.kind] ?? String(e.detail?.kind)
      const g = (gc[k] ??= { n: 0, sumMs: 0, maxMs: 0 })
      g.n++
      g.sumMs += e.duration
      g.maxMs = Math.max(g.maxMs, e.duration)
    }
  }).observe({ entryTypes: ['gc'] })
  const emit = http.Server.prototype.emit
  http.Server.prototype.emit = function (ev, q, s) {
    if (ev === 'request') {
      const t0 = process.hrtime.bigint()
      s.once('finish', () => req.push(Number(process.hrtime.bigint() - t0) / 1e6))
    }
    return emit.apply(this, arguments)
  }
  const q = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : 0)
  process.on('SIGUSR2', () => {
    const r = req.sort((a, b) => a - b)
    const ms = (ns) => Number((ns / 1e6).toFixed(2))
    const line = {
      requests: r.length,
      inKernelMs: { p50: q(r, 0.5), p99: q(r, 0.99), max: r.at(-1) ?? 0 },
      gc,
      loopDelayMs: { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) },
      cpuMs: process.cpuUsage(),
    }
    appendFileSync(out, JSON.stringify(line) + '\n')
    gc = {}
    req = []
    loop.reset()
  })
}
