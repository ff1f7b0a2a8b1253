// Config and vault benchmark: layered config load + validate of a 200-key file, and vault
// get/set latency — each against a raw baseline measured in the same run.
// Run: npx tsc -p tsconfig.build.json && node_modules/.bin/node bench/config-vault.mjs
//   (or MAGFLOCK_DIST=/path/to/other/dist to use a private build)
// Writes docs/benchmarks/config.md (`node bench/merge.mjs` folds it into docs/benchmarks.md).
import { Buffer } from 'node:buffer'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { mkdirSync, promises as fsp, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, tmp, stats, fmt, table, machine, writeSection } from './lib.mjs'

const DIST = process.env.MAGFLOCK_DIST ?? path.join(ROOT, 'dist')
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href)
const { loadConfig } = await load('config/load.js')
const { MagflockConfig } = await load('config/schema.js')
const { FileVault } = await load('secrets/vault.js')
const { stateLayout } = await load('platform/paths.js')
const YAML = await import(pathToFileURL(path.join(ROOT, 'node_modules/yaml/dist/index.js')).href)

const now = () => Number(process.hrtime.bigint()) / 1e6
const ratio = (a, b) => `${(a / b).toFixed(2)}×`
const rows = []
console.log(machine())

/** Runs the functions interleaved (a, b, a, b, …) so machine noise hits them alike. */
async function sampleAll(n, ...fns) {
  for (let i = 0; i < Math.min(20, n); i++) for (const fn of fns) await fn(i) // warm-up
  const out = fns.map(() => [])
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < fns.length; j++) {
      const t0 = now()
      await fns[j](i)
      out[j].push(now() - t0)
    }
  }
  return out.map(stats)
}

// 1. A 200-key magflock.yaml (every schema key + 180 postgres.settings) plus an env overlay
//    and two MAGFLOCK_* variables: full load (read, parse with positions, env mapping, merge,
//    zod validation, provenance) vs the raw minimum: readFile + YAML.parse + schema.parse.
{
  const dir = tmp('mf-bench-cfg-')
  const settings = Object.fromEntries(Array.from({ length: 180 }, (_, i) => [`custom.setting_${i}`, i % 3 === 0 ? `${i}MB` : i]))
  const doc = {
    flock: 'bench',
    postgres: { port: 6432, database: 'app', osUser: 'postgres', superuser: 'postgres', startTimeoutSeconds: 30, settings },
    kernel: { logLevel: 'info', restart: { maxRestarts: 5, windowSeconds: 60, initialBackoffMs: 200, maxBackoffMs: 10000 } },
    metrics: { enabled: true, port: 9187 },
    migrations: { dir: './migrations', lockTimeoutSeconds: 60 },
    backup: { compression: 'zstd', schedule: '0 3 * * *', encryptionKey: 'secret:kek', walArchiving: true },
    replication: { failover: { enabled: true, graceSeconds: 1 }, basePort: 5434 },
  }
  const text = '# bench\n' + YAML.stringify(doc)
  writeFileSync(path.join(dir, 'magflock.yaml'), text)
  writeFileSync(path.join(dir, 'magflock.production.yaml'), 'postgres:\n  port: 6433\n')
  const environ = { MAGFLOCK_KERNEL__LOG_LEVEL: 'warn', MAGFLOCK_METRICS__PORT: '9200' }
  const keys = (await loadConfig({ cwd: dir, env: 'production', environ })).explain().length
  const N = Number(process.env.BENCH_CONFIG ?? 300)
  const [ours, explain, base] = await sampleAll(
    N,
    () => loadConfig({ cwd: dir, env: 'production', environ }),
    async () => (await loadConfig({ cwd: dir, env: 'production', environ })).explain(),
    async () => MagflockConfig.parse(YAML.parse(await fsp.readFile(path.join(dir, 'magflock.yaml'), 'utf8'))),
  )
  rows.push([`config load + validate, ${keys} keys, 2 files + 2 variables, p50`, fmt(ours.p50), 'readFile + YAML.parse + zod parse of the same file', fmt(base.p50), ratio(ours.p50, base.p50)])
  rows.push([`config load + explain (all ${keys} sources), p50`, fmt(explain.p50), 'same baseline', fmt(base.p50), ratio(explain.p50, base.p50)])
}

// 2. Vault: set = lock + read/decrypt + encrypt + atomic write (fsync file + dir) + unlock;
//    get = read + decrypt, with 50 secrets in the vault. Baselines: the same AES-GCM work on
//    the same bytes with a plain writeFile+fsync / readFile.
{
  const dir = tmp('mf-bench-vault-')
  const layout = stateLayout(path.join(dir, 'state'))
  mkdirSync(layout.root, { recursive: true })
  const environ = { MAGFLOCK_MASTER_KEY: randomBytes(32).toString('hex') }
  const vault = new FileVault(layout, environ)
  for (let i = 0; i < 50; i++) await vault.set(`s${i}`, randomBytes(24).toString('base64url'))
  const N = Number(process.env.BENCH_VAULT ?? 200)
  const key = randomBytes(32)
  const plain = Buffer.from(JSON.stringify(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`s${i}`, { value: randomBytes(24).toString('base64url'), updatedAt: new Date().toISOString() }]))))
  const rawFile = path.join(dir, 'raw.bin')
  const rawSetFn = async () => {
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', key, iv)
    const data = Buffer.concat([c.update(plain), c.final(), c.getAuthTag(), iv])
    const fh = await fsp.open(rawFile, 'w', 0o600)
    await fh.writeFile(data)
    await fh.sync()
    await fh.close()
  }
  const rawGetFn = async () => {
    const b = await fsp.readFile(rawFile)
    const iv = b.subarray(b.length - 12)
    const tag = b.subarray(b.length - 28, b.length - 12)
    const d = createDecipheriv('aes-256-gcm', key, iv)
    d.setAuthTag(tag)
    JSON.parse(Buffer.concat([d.update(b.subarray(0, b.length - 28)), d.final()]).toString())
  }
  await rawSetFn()
  const [set, rawSet] = await sampleAll(N, (i) => vault.set(`s${i % 50}`, randomBytes(24).toString('base64url')), rawSetFn)
  const [get, rawGet] = await sampleAll(N * 5, (i) => new FileVault(layout, environ).get(`s${i % 50}`), rawGetFn)
  rows.push(['vault set (50 secrets; lock, atomic write, fsync file + dir), p50', fmt(set.p50), 'AES-GCM + writeFile + fsync', fmt(rawSet.p50), ratio(set.p50, rawSet.p50)])
  rows.push(['vault set, p99', fmt(set.p99), 'same, p99', fmt(rawSet.p99), ratio(set.p99, rawSet.p99)])
  rows.push(['vault get (cold store object: key parse + read + decrypt), p50', fmt(get.p50), 'readFile + AES-GCM decrypt + JSON.parse', fmt(rawGet.p50), ratio(get.p50, rawGet.p50)])
}

const md = `## Config and secrets vault

\`npx tsc -p tsconfig.build.json && node_modules/.bin/node bench/config-vault.mjs\` — ${machine()}

${table(['MagFlock', 'time', 'baseline (same run)', 'time', 'ratio'], rows)}

The loader parses YAML into a document model (for file:line of every key), maps variables
against the schema, merges with provenance and validates once; an operator runs it once per
command, the kernel once per start or reload. A vault set is an atomic replace (temp file,
fsync, rename, fsync of the directory) under a cross-process lock file, so it costs about
two fsyncs more than a bare write; a get reads and authenticates the whole (small) file.
`
console.log(md)
writeSection('config', md)
