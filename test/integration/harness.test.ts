import { describe, expect, it } from 'vitest'
import { startTestPostgres } from '../helpers/pg.js'

describe('test harness', () => {
  it('starts a real Postgres that accepts a write', async () => {
    const pg = await startTestPostgres()
    try {
      await pg.query('create table t(x int); insert into t values (1)')
      const r = await pg.query<{ n: string }>('select count(*) as n from t')
      expect(r.rows[0]?.n).toBe('1')
    } finally {
      await pg.stop()
    }
  })
})
