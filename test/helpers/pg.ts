import { mkdirSync, chownSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import { postgresRunAs } from '../../src/platform/os-user.js'
import { freePort } from '../../src/platform/ports.js'
import { run } from '../../src/platform/process.js'
import { tempDir } from './tmp.js'

/**
 * A throwaway, real Postgres for domain tests that do not need the kernel: initdb into a
 * temp dir, `pg_ctl start -w` on a free port, superuser `postgres` with a password.
 * Call `stop()` in afterAll.
 */
export interface TestPostgres {
  host: string
  port: number
  user: string
  password: string
  dataDir: string
  dir: string
  url(db?: string): string
  connection(db?: string): pg.ClientConfig
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], db?: string): Promise<pg.QueryResult<R>>
  stop(): Promise<void>
}

/**
 * initdb of a test cluster (superuser `postgres` with a random password, scram, checksums, no
 * fsync), as the postgres OS user when we are root. Returns the password; `pwfile` is removed.
 */
export async function initTestCluster(dataDir: string, pwfile: string): Promise<string> {
  const runAs = postgresRunAs()
  const password = 'test-' + Math.random().toString(36).slice(2)
  writeFileSync(pwfile, password, { mode: 0o600 })
  mkdirSync(dataDir, { mode: 0o700 })
  if (runAs) {
    chownSync(pwfile, runAs.uid, runAs.gid)
    chownSync(dataDir, runAs.uid, runAs.gid)
  }
  try {
    await run(findPgBinaries().tool('initdb'), ['-D', dataDir, '-U', 'postgres', '--pwfile', pwfile, '--auth=scram-sha-256', '-E', 'UTF8', '--no-sync', '-k'], { runAs })
  } finally {
    rmSync(pwfile, { force: true })
  }
  return password
}

export async function startTestPostgres(opts: { conf?: Record<string, string | number>; replication?: boolean } = {}): Promise<TestPostgres> {
  const bins = findPgBinaries()
  const runAs = postgresRunAs()
  const tmp = tempDir('mf-pg-')
  const dataDir = path.join(tmp.dir, 'data')
  if (runAs) chownSync(tmp.dir, runAs.uid, runAs.gid)
  // A copy of the run's initdb template (test/helpers/global-setup.ts) when there is one:
  // same flags, same superuser password; the clusters share a system identifier.
  const template = process.env.MAGFLOCK_TEST_PG_TEMPLATE
  let password: string
  if (template) {
    password = process.env.MAGFLOCK_TEST_PG_TEMPLATE_PASSWORD ?? ''
    await run('cp', ['-a', template, dataDir])
  } else {
    password = await initTestCluster(dataDir, path.join(tmp.dir, 'pw'))
  }
  const port = await freePort()
  const conf: Record<string, string | number> = {
    port,
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${tmp.dir}'`,
    fsync: 'off',
    wal_level: 'replica',
    max_wal_senders: 10,
    max_replication_slots: 10,
    ...(opts.conf ?? {}),
  }
  writeFileSync(
    path.join(dataDir, 'postgresql.auto.conf'),
    Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n',
  )
  if (runAs) chownSync(path.join(dataDir, 'postgresql.auto.conf'), runAs.uid, runAs.gid)
  if (opts.replication) {
    writeFileSync(path.join(dataDir, 'pg_hba.conf'), 'local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n')
  }
  await run(bins.tool('pg_ctl'), ['-D', dataDir, '-l', path.join(tmp.dir, 'pg.log'), '-w', '-t', '60', 'start'], { runAs })

  const connection = (db = 'postgres'): pg.ClientConfig => ({ host: '127.0.0.1', port, user: 'postgres', password, database: db })
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    dataDir,
    dir: tmp.dir,
    url: (db = 'postgres') => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`,
    connection,
    async query(sql, params, db) {
      const c = new pg.Client(connection(db))
      await c.connect()
      try {
        return await c.query(sql, params)
      } finally {
        await c.end()
      }
    },
    async stop() {
      await run(bins.tool('pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], { runAs, reject: false })
      tmp.cleanup()
    },
  }
}
