#!/usr/bin/env node
// Compile cache first: it makes every later import cheaper (Node >= 22.1).
import module from 'node:module'
module.enableCompileCache?.()

const [major] = process.versions.node.split('.').map(Number)
if (major < 22) {
  process.stderr.write(
    `magflock needs Node.js 22 or newer; this is ${process.version}.\n` +
      'Hint: in a clone, `npm ci` installs the project\'s Node 24 (node_modules/node) and `./magflock …` runs on it.\n',
  )
  process.exit(69)
}

const { execute } = await import('@oclif/core')
await execute({ dir: import.meta.url })
