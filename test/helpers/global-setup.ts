import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import { postgresRunAs } from '../../src/platform/os-user.js'
import { run } from '../../src/platform/process.js'
import { tempDir } from './tmp.js'

/**
 * Fails the whole run early, with one clear line, when no Postgres binaries are found. Then
 * runs initdb once for the run: startTestPostgres (test/helpers/pg.ts) copies this template
 * instead of running initdb for every test database (a copy takes a tenth of the time).
 */
export default async function setup(): Promise<() => void> {
  const bins = findPgBinaries()
  process.env.MAGFLOCK_TEST_PG_BINDIR = bins.binDir
  const runAs = postgresRunAs()
  const tmp = tempDir('mf-pg-template-')
  const dataDir = path.join(tmp.dir, 'data')
  const password = 'test-' + Math.random().toString(36).slice(2)
  const pwfile = path.join(tmp.dir, 'pw')
  writeFileSync(pwfile, password, { mode: 0o600 })
  mkdirSync(dataDir, { mode: 0o700 })
  if (runAs) {
    chownSync(pwfile, runAs.uid, runAs.gid)
    chownSync(dataDir, runAs.uid, runAs.gid)
  }
  await run(bins.tool('initdb'), ['-D', dataDir, '-U', 'postgres', '--pwfile', pwfile, '--auth=scram-sha-256', '-E', 'UTF8', '--no-sync', '-k'], { runAs })
  rmSync(pwfile)
  process.env.MAGFLOCK_TEST_PG_TEMPLATE = dataDir
  process.env.MAGFLOCK_TEST_PG_TEMPLATE_PASSWORD = password
  return () => tmp.cleanup()
}
