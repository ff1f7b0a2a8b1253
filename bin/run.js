#!/usr/bin/env node
// Compile cache first: it makes every later import cheaper (Node >= 22.1).
import module from 'node:module'
import { existsSync } from 'node:fs'
module.enableCompileCache?.()

const [major] = process.versions.node.split('.').map(Number)
if (major < 22) {
  process.stderr.write(
    `magflock needs Node.js 22 or newer; this is ${process.version}.\n` +
      'Hint: in a clone, `npm ci` installs the project\'s Node 24 (node_modules/node) and `./magflock …` runs on it.\n',
  )
  process.exit(69)
}

// `up`: spawn the detached kernel (and so Postgres) first, then load oclif while it boots
// (src/cli/early-up.ts).
if (process.argv[2] === 'up') {
  const EARLY = new URL('../dist/cli/early-up.js', import.meta.url)
  if (existsSync(EARLY)) await (await import(EARLY.href)).startEarlyUp(process.argv.slice(3))
}

const { execute } = await import('@oclif/core')
await execute({ dir: import.meta.url })
