/**
 * The detached kernel's process entry (spawned by src/kernel/launcher.ts). It skips oclif,
 * which saves its start-up on every `magflock up`; `magflock kernel start --foreground` is
 * the same kernel for a terminal. Arguments: --state-dir DIR [--env NAME]; cwd = project dir.
 * A boot failure is recorded in <state>/kernel.start-error.json by startKernel (read by
 * `up`) and printed here to stderr (<state>/kernel.out).
 */
import module from 'node:module'
import { parseArgs } from 'node:util'
import { discardEarlyPostmasters, releaseEarlyLock, startEarlyPostmasters } from '../postgres/early-start.js'

module.enableCompileCache?.()

const { values } = parseArgs({ options: { 'state-dir': { type: 'string' }, env: { type: 'string' } }, strict: true })
const stateDir = values['state-dir']
if (!stateDir) {
  process.stderr.write('usage: daemon/entry.js --state-dir DIR [--env NAME]\n')
  process.exit(2)
}
// First stage: the postmasters of a cleanly stopped flock start now, while the kernel loads
// (src/postgres/early-start.ts); the postgres component takes them over as its own children.
startEarlyPostmasters(stateDir)
// Binary discovery's execs (`pg_config --bindir`, `postgres --version`: 40 ms of wall time on
// Debian, where pg_config is a shell script) run while the kernel bundle loads; startKernel's
// prefetchPgBinaries() then returns this same run (src/postgres/binaries.ts).
void import('../postgres/binaries.js').then((m) => m.prefetchPgBinaries(), () => undefined)
// Likewise the lookup of the default postgres OS user (`getent passwd postgres`), which
// startKernel's prefetchOsUser() then finds answered (src/platform/os-user.ts).
void import('../platform/os-user.js').then((m) => m.prefetchOsUser(), () => undefined)
try {
  const { runForeground } = await import('./main.js')
  await runForeground({ stateDir, projectDir: process.cwd(), env: values.env, foreground: false })
} catch (err) {
  const e = err as { code?: string; message?: string; exitCode?: number }
  process.stderr.write(`Error [${e.code ?? 'E_INTERNAL'}]: ${e.message ?? String(err)}\n`)
  process.exitCode = e.exitCode ?? 1
} finally {
  // A boot that failed before the postgres component took them leaves nothing running.
  await discardEarlyPostmasters()
  releaseEarlyLock(stateDir)
}
