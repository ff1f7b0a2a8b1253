import pg from 'pg'

/** One query as the superuser over TCP on 127.0.0.1:port, on a connection of its own. */
export async function query<R extends pg.QueryResultRow>(port: number, password: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password })
  c.on('error', () => undefined)
  await c.connect()
  try {
    return (await c.query<R>(sql)).rows
  } finally {
    await c.end()
  }
}

/** pg_is_in_recovery() of the server on `port`, or undefined when it does not answer. */
export async function inRecovery(port: number, password: string): Promise<boolean | undefined> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, connectionTimeoutMillis: 2000 })
  c.on('error', () => undefined)
  try {
    await c.connect()
    return (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r
  } catch {
    return undefined
  } finally {
    await c.end().catch(() => undefined)
  }
}
