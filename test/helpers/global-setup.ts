import { findPgBinaries } from '../../src/postgres/binaries.js'

/** Fails the whole run early, with one clear line, when no Postgres binaries are found. */
export default function setup(): void {
  const bins = findPgBinaries()
  process.env.MAGFLOCK_TEST_PG_BINDIR = bins.binDir
}
