// Builds the optional native socket writer (native/socket-writes.c → dist/native/socket-writes.node)
// that the realtime hub uses for its flush (src/realtime/native.ts). Node-API only, so one build
// loads in every Node ≥ 22; compiled with the system's C compiler (cc, or $CC) against the
// headers of the node-api-headers package: no node-gyp, no download.
//
// Optional by design: where it cannot be built (no compiler, not Linux) the build says so in one
// line and goes on, and the hub writes each socket through Node (`magflock realtime status`
// reports which writer runs). Run by `npm run build` after tsc.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const out = path.join(ROOT, 'dist/native/socket-writes.node')
const skip = (why) => {
  rmSync(out, { force: true })
  process.stderr.write(`build-native: native socket writer not built (${why}); realtime writes each socket through Node\n`)
  process.exit(0)
}

if (process.platform !== 'linux') skip(`${process.platform}: the writer uses Linux's send(2) flags`)
let include
try {
  include = path.dirname(createRequire(import.meta.url).resolve('node-api-headers/include/node_api.h'))
} catch {
  skip('the node-api-headers package is not installed')
}
mkdirSync(path.dirname(out), { recursive: true })
const cc = process.env.CC || 'cc'
try {
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', include, '-o', out, path.join(ROOT, 'native/socket-writes.c')], { stdio: ['ignore', 'ignore', 'pipe'] })
} catch (err) {
  const e = /** @type {{ code?: string, stderr?: Buffer }} */ (err)
  skip(e.code === 'ENOENT' ? `no C compiler: ${cc} not found` : `${cc} failed: ${String(e.stderr ?? '').trim().split('\n')[0]}`)
}
