import path from 'node:path'
import pg from 'pg'
import type { InstanceSpec } from '../../../src/postgres/instance.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { freePort } from '../../../src/platform/ports.js'
import { tempDir } from '../../helpers/tmp.js'

/** An InstanceSpec in a fresh temp state dir on a free port. fsync off (only an OS crash loses
 * data then); synchronous_commit stays on, or a kill -9 would rightly lose recent commits. */
export async function testSpec(opts: { name?: string; settings?: InstanceSpec['settings'] } = {}): Promise<{
  spec: InstanceSpec
  root: string
  cleanup(): void
}> {
  const tmp = tempDir('mf-inst-')
  const name = opts.name ?? 'primary'
  const instanceDir = path.join(tmp.dir, 'instances', name)
  const spec: InstanceSpec = {
    name,
    instanceDir,
    dataDir: path.join(instanceDir, 'data'),
    logFile: path.join(instanceDir, 'postgres.log'),
    host: '127.0.0.1',
    port: await freePort(),
    superuser: 'postgres',
    bins: findPgBinaries(process.env.MAGFLOCK_TEST_PG_BINDIR),
    runAs: postgresRunAs(),
    settings: { fsync: false, full_page_writes: false, ...(opts.settings ?? {}) },
    startTimeoutMs: 30_000,
  }
  return { spec, root: tmp.dir, cleanup: tmp.cleanup }
}

export async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
  spec: InstanceSpec,
  password: string,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<R>> {
  const c = new pg.Client({ host: spec.host, port: spec.port, user: spec.superuser, password, database: 'postgres' })
  await c.connect()
  try {
    return await c.query<R>(sql, params)
  } finally {
    await c.end()
  }
}

/** Kills whatever postmaster still runs in the data dir (afterAll safety net). */
export async function killLeftovers(dataDir: string): Promise<void> {
  const { processesInDataDir } = await import('../../../src/postgres/pidfile.js')
  for (const pid of await processesInDataDir(dataDir)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
}
