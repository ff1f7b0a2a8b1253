import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { withClient } from '../../../src/backup/sql.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'

/**
 * The backup domain's short-lived connection (the WAL archiver's slot checks and lag probes
 * use it inside the kernel). A server that goes away while the client sits idle between two
 * queries sends a FATAL the client emits as 'error': without a listener that was an uncaught
 * exception, which ends the kernel process (seen once in a full suite run as "terminating
 * connection due to unexpected postmaster exit" during a failover test of an in-process
 * kernel). Now the next query rejects.
 */
describe('backup withClient', () => {
  let pgx: TestPostgres
  beforeAll(async () => {
    pgx = await startTestPostgres()
  })
  afterAll(async () => {
    await pgx?.stop()
  })

  it('rejects the next query when its backend dies while the client is idle, and the process lives on', async () => {
    const err = await withClient(pgx.connection(), async (c) => {
      const pid = (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
      await pgx.query('select pg_terminate_backend($1)', [pid])
      // Let the FATAL reach the idle client (its 'error' event fires now, outside any query).
      const deadline = Date.now() + 5000
      while (Date.now() < deadline && (await pgx.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount) await new Promise((r) => setTimeout(r, 20))
      await new Promise((r) => setTimeout(r, 200))
      return c.query('select 1').then(
        () => undefined,
        (e: unknown) => e,
      )
    })
    expect(err).toBeInstanceOf(Error)
    // The server is fine: a new connection works.
    expect((await withClient(pgx.connection(), (c) => c.query<{ one: number }>('select 1 as one'))).rows[0]!.one).toBe(1)
  })
})
