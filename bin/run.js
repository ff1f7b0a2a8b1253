#!/usr/bin/env node
// Compile cache first: it makes every later import cheaper (Node >= 22.1).
import module from 'node:module'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
module.enableCompileCache?.()

const [major] = process.versions.node.split('.').map(Number)
if (major < 22) {
  process.stderr.write(
    `magflock needs Node.js 22 or newer; this is ${process.version}.\n` +
      'Hint: in a clone, `npm ci` installs the project\'s Node 24 (node_modules/node) and `./magflock …` runs on it.\n',
  )
  process.exit(69)
}

// A reader that stops reading (`magflock --help | head -1`, `magflock events --follow | head -1`):
// Node ignores SIGPIPE, so the next write to stdout fails with EPIPE, which oclif swallows. The
// write's callback never comes: Node ended with "unsettled top-level await" and exit 13, and a
// follower went on writing to nobody. The CLI ends there instead, as a Unix tool ends on
// SIGPIPE: its output has nowhere to go (a request it had sent is the kernel's to finish or
// cancel, as on Ctrl-C).
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err
  process.exit(process.exitCode ?? 0)
})

// `up`: spawn the detached kernel (and so Postgres) first, then load oclif while it boots
// (src/cli/early-up.ts).
if (process.argv[2] === 'up') {
  const EARLY = new URL('../dist/cli/early-up.js', import.meta.url)
  if (existsSync(EARLY)) await (await import(EARLY.href)).startEarlyUp(process.argv.slice(3))
}

// oclif loads every plugin (its package.json and manifest) before it runs any command, though
// ours only add `help` and `autocomplete`: ~6 % of the CPU of a `status --json`. A call whose
// first word is one of our own commands or topics (dist/commands/<word>[.js]) and that asks for
// no help, or a bare `--version`, runs with the root plugin alone.
const args = process.argv.slice(2)
const first = args[0] ?? ''
const ownCommand =
  /^[a-z][a-z0-9-]*$/.test(first) &&
  first !== 'help' &&
  first !== 'autocomplete' &&
  !args.includes('--help') &&
  !args.includes('-h') &&
  (existsSync(new URL(`../dist/commands/${first}.js`, import.meta.url)) || existsSync(new URL(`../dist/commands/${first}/`, import.meta.url)))
const { execute } = await import('@oclif/core')
let loadOptions
if (ownCommand || (args.length === 1 && first === '--version')) {
  const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  pjson.oclif.plugins = []
  loadOptions = { root: fileURLToPath(new URL('..', import.meta.url)), pjson }
}
await execute(loadOptions ? { loadOptions } : { dir: import.meta.url })
