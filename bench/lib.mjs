// Shared helpers for benchmarks: timing, percentiles, markdown tables.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, chmodSync, writeFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const NODE = process.execPath

/** Progress line on stderr with a time of day, so stdout stays the bench's own output. */
export function log(m) {
  console.error(`[${new Date().toISOString().slice(11, 23)}] ${m}`)
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}

export function tmp(prefix = 'mf-bench-') {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix))
  chmodSync(d, 0o755)
  return d
}

export function timeRun(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return ms
}

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  return { n: s.length, min: s[0], p50: q(0.5), p99: q(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length }
}

export function fmt(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`
}

export function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

export function machine() {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z`
}

export function writeSection(name, markdown) {
  const dir = path.join(ROOT, 'docs/benchmarks')
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, `${name}.md`), markdown.trimEnd() + '\n')
}

/** docs/benchmarks.md = an intro + every docs/benchmarks/*.md section. */
export function mergeBenchmarks() {
  const dir = path.join(ROOT, 'docs/benchmarks')
  const parts = readdirSync(dir).filter((f) => f.endsWith('.md')).sort()
  const body = parts.map((f) => readFileSync(path.join(dir, f), 'utf8').trim()).join('\n\n')
  writeFileSync(
    path.join(ROOT, 'docs/benchmarks.md'),
    `# Benchmarks\n\nEvery table compares MagFlock against a baseline measured in the same run on the same machine\n(these machines are small and noisy: compare within a table, not across tables). Regenerate a\nsection with the command under its heading (or \`npm run bench -- NAME\`, see \`bench/run.mjs\`);\n\`node bench/merge.mjs\` rebuilds this page.\n\n${body}\n`,
  )
}

export function pgBin() {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
  } catch {
    const v = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))[0]
    return `/usr/lib/postgresql/${v}/bin`
  }
}
