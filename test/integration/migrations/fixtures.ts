import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { TestPostgres } from '../../helpers/pg.js'

/** A migrations folder from { fileName: contents }. */
export function writeMigrations(dir: string, files: Record<string, string>): string {
  mkdirSync(dir, { recursive: true })
  for (const [name, sql] of Object.entries(files)) writeFileSync(path.join(dir, name), sql)
  return dir
}

/** N small consecutive migrations, like the anchor generator. */
export function generated(n: number, from = 1): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = from; i < from + n; i++) {
    out[`${String(i).padStart(5, '0')}_create-t${i}.sql`] = `CREATE TABLE t${i} (\n  id bigint PRIMARY KEY,\n  name text NOT NULL\n);\nINSERT INTO t${i} VALUES (1, 'row-${i}');\n`
  }
  return out
}

let counter = 0
/** A fresh database on the test instance; one per test keeps failures inspectable. */
export async function freshDb(pg: TestPostgres, prefix = 'm'): Promise<string> {
  const name = `${prefix}_${process.pid}_${++counter}`
  await pg.query(`CREATE DATABASE ${name} STRATEGY FILE_COPY`)
  return name
}

const ROOT = path.resolve(import.meta.dirname, '../../..')
export const NODE = path.join(ROOT, 'node_modules/.bin/node')

/**
 * A `magflock` executable for subprocess tests: the BUILT CLI (dist/, build first with
 * `npx tsc -p tsconfig.build.json`), loaded with ignoreManifest so a stale
 * oclif.manifest.json in the shared tree cannot hide new commands.
 * Returns the directory to put first on PATH.
 */
export function cliShim(dir: string): string {
  const bin = path.join(dir, 'bin')
  mkdirSync(bin, { recursive: true })
  writeFileSync(
    path.join(bin, 'magflock.mjs'),
    [
      "import { createRequire } from 'node:module'",
      `const require = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})`,
      "const { execute } = require('@oclif/core')",
      `await execute({ args: process.argv.slice(2), loadOptions: { root: ${JSON.stringify(ROOT)}, ignoreManifest: true } })`,
      '',
    ].join('\n'),
  )
  writeFileSync(path.join(bin, 'magflock'), `#!/bin/sh\nexec ${JSON.stringify(NODE)} ${JSON.stringify(path.join(bin, 'magflock.mjs'))} "$@"\n`, { mode: 0o755 })
  return bin
}
