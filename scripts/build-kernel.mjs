// 1. zod as one file, dist/vendor/zod.js: bin/run.js resolves 'zod' to it, which spares every
//    command that talks to the kernel loading zod's hundred-odd modules one by one.
// 2. Bundles the detached kernel's entry (src/daemon/entry.ts) into dist/daemon/entry.js, over
// the file tsc wrote, so `magflock up` starts a kernel that reads one file instead of resolving
// a few hundred modules. Run by `npm run build` after tsc (so the build stays reproducible
// from `npm ci`). Route handlers and everything a request pulls in sit behind dynamic
// imports and land in their own chunks (dist/daemon/entry-*.js), loaded on first use.
// Chunks stay next to entry.js so that paths relative to import.meta.url
// (../../package.json, ../../templates/) resolve as they do from any dist/<dir>/<file>.js.
import { build } from 'esbuild'
import { readdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

await build({
  stdin: { contents: "export * from 'zod'\nexport { default } from 'zod'\n", resolveDir: ROOT, sourcefile: 'zod-entry.js' },
  outfile: path.join(ROOT, 'dist/vendor/zod.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  logLevel: 'warning',
})

const OUT = path.join(ROOT, 'dist/daemon')
for (const f of readdirSync(OUT)) if (/^entry-[A-Z0-9]+\.js(\.map)?$/.test(f)) rmSync(path.join(OUT, f))

await build({
  entryPoints: [path.join(ROOT, 'src/daemon/entry.ts')],
  outdir: OUT,
  bundle: true,
  splitting: true,
  chunkNames: 'entry-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node22',
  jsx: 'automatic',
  sourcemap: true,
  // Stay real imports: native addons, optional peers, and packages that find their own files
  // through __dirname (postgres-migrations' SQL, pino's transport workers).
  external: ['@napi-rs/keyring', 'pg-native', '@opentelemetry/api', 'postgres-migrations', 'pino'],
  // CommonJS dependencies (pg, pino, prom-client, …) call require() inside an ES module.
  banner: { js: "import { createRequire as __mfRequire } from 'node:module'; const require = __mfRequire(import.meta.url);" },
  logLevel: 'warning',
})
