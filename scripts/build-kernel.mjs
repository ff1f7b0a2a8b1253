// 1. zod as one file, dist/vendor/zod.js, and every `from 'zod'` tsc wrote in dist/ pointed at
//    it: that spares every command that talks to the kernel loading zod's hundred-odd modules
//    one by one, without a resolve hook (which slowed every other import of the CLI).
// 2. Bundles the detached kernel's entry (src/daemon/entry.ts) into dist/daemon/entry.js, over
// the file tsc wrote, so `magflock up` starts a kernel that reads one file instead of resolving
// a few hundred modules. Run by `npm run build` after tsc (so the build stays reproducible
// from `npm ci`). Route handlers and everything a request pulls in sit behind dynamic
// imports and land in their own chunks (dist/daemon/entry-*.js), loaded on first use.
// Chunks stay next to entry.js so that paths relative to import.meta.url
// (../../package.json, ../../templates/) resolve as they do from any dist/<dir>/<file>.js.
import { build } from 'esbuild'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// zod's `z.locales` namespace pulls its 64 translations (half of zod's bundled size) into every
// process that imports zod; MagFlock never calls z.config(z.locales.xx()). Bundles get a
// locales module with English only (the messages zod uses by default, imported by its schemas
// directly): ~360 KB less to load in the CLI and the kernel, ~15 % of zod's import CPU.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) => (/[/\\]node_modules[/\\]zod[/\\]v4[/\\]/.test(a.importer) ? { path: 'zod-locales', namespace: 'zod-locales' } : undefined))
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, () => ({
      contents: `export { default as en } from ${JSON.stringify(path.join(ROOT, 'node_modules/zod/v4/locales/en.js'))}\n`,
      resolveDir: ROOT,
    }))
  },
}

await build({
  stdin: { contents: "export * from 'zod'\nexport { default } from 'zod'\n", resolveDir: ROOT, sourcefile: 'zod-entry.js' },
  outfile: path.join(ROOT, 'dist/vendor/zod.js'),
  bundle: true,
  plugins: [zodEnglishOnly],
  platform: 'node',
  format: 'esm',
  target: 'node22',
  logLevel: 'warning',
})

const VENDOR_ZOD = path.join(ROOT, 'dist/vendor/zod.js')
for (const e of readdirSync(path.join(ROOT, 'dist'), { recursive: true, withFileTypes: true })) {
  if (!e.isFile() || !e.name.endsWith('.js')) continue
  const file = path.join(e.parentPath, e.name)
  const text = readFileSync(file, 'utf8')
  if (!text.includes("from 'zod'")) continue
  let rel = path.relative(path.dirname(file), VENDOR_ZOD)
  if (!rel.startsWith('.')) rel = `./${rel}`
  writeFileSync(file, text.replaceAll("from 'zod';", `from '${rel}';`))
}

const OUT = path.join(ROOT, 'dist/daemon')
for (const f of readdirSync(OUT)) if (/^entry-[A-Z0-9]+\.js(\.map)?$/.test(f)) rmSync(path.join(OUT, f))

await build({
  entryPoints: [path.join(ROOT, 'src/daemon/entry.ts')],
  outdir: OUT,
  bundle: true,
  splitting: true,
  chunkNames: 'entry-[hash]',
  plugins: [zodEnglishOnly],
  platform: 'node',
  format: 'esm',
  target: 'node22',
  jsx: 'automatic',
  sourcemap: true,
  // Stay real imports: native addons, optional peers, and packages that find their own files
  // through __dirname (postgres-migrations' SQL, pino's transport workers, etcd3's .proto files).
  external: ['@napi-rs/keyring', 'pg-native', '@opentelemetry/api', 'postgres-migrations', 'pino', 'etcd3'],
  // CommonJS dependencies (pg, pino, prom-client, …) call require() inside an ES module.
  banner: { js: "import { createRequire as __mfRequire } from 'node:module'; const require = __mfRequire(import.meta.url);" },
  logLevel: 'warning',
})
