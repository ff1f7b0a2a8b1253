// Summarizes a .cpuprofile: self time per function (top N) and total time per function
// including callees. `node bench/cpu-prof-top.mjs <file> [N]`.
import { readFileSync } from 'node:fs'

const [file, nArg] = process.argv.slice(2)
const N = Number(nArg ?? 30)
const p = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const dt = new Map()
p.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
const name = (n) => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`
const self = new Map()
const total = new Map()
let all = 0
for (const [id, t] of dt) {
  all += t
  const n = byId.get(id)
  self.set(name(n), (self.get(name(n)) ?? 0) + t)
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur))
    if (seen.has(k)) continue
    seen.add(k)
    total.set(k, (total.get(k) ?? 0) + t)
  }
}
const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, N).map(([k, t]) => `${(t / 1000).toFixed(1).padStart(8)} ms ${((100 * t) / all).toFixed(1).padStart(5)}%  ${k}`).join('\n')
console.log(`total ${(all / 1000).toFixed(0)} ms\n-- self --\n${top(self)}\n-- total --\n${top(total)}`)
