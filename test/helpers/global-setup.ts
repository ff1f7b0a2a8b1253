import path from 'node:path'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import { initTestCluster } from './pg.js'
import { tempDir } from './tmp.js'

/**
 * Fails the whole run early, with one clear line, when no Postgres binaries are found. Then
 * runs initdb once for the run: startTestPostgres (test/helpers/pg.ts) copies this template
 * instead of running initdb for every test database (a copy takes a tenth of the time).
 */
export default async function setup(): Promise<() => void> {
  const bins = findPgBinaries()
  process.env.MAGFLOCK_TEST_PG_BINDIR = bins.binDir
  const tmp = tempDir('mf-pg-template-')
  const dataDir = path.join(tmp.dir, 'data')
  const password = await initTestCluster(dataDir, path.join(tmp.dir, 'pw'))
  process.env.MAGFLOCK_TEST_PG_TEMPLATE = dataDir
  process.env.MAGFLOCK_TEST_PG_TEMPLATE_PASSWORD = password
  return () => tmp.cleanup()
}
