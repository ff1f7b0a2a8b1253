import pg from 'pg'

/** The few SQL statements backups need, as functions over one short-lived connection. */
export async function withClient<T>(conn: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...conn, application_name: 'magflock-backup' })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => undefined)
  }
}

export interface SourceInfo {
  pgVersion: string
  systemIdentifier: string
  databases: string[]
  totalBytes: number
  timeline: number
  currentLsn: string
}

export async function sourceInfo(c: pg.Client): Promise<SourceInfo> {
  const v = await c.query<{ v: string }>(`select current_setting('server_version') as v`)
  const sys = await c.query<{ id: string; tli: number }>(
    `select system_identifier::text as id, (select timeline_id from pg_control_checkpoint()) as tli from pg_control_system()`,
  )
  const dbs = await c.query<{ datname: string; size: string }>(
    `select datname, pg_database_size(oid)::text as size from pg_database where datallowconn order by datname`,
  )
  const lsn = await c.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`)
  return {
    pgVersion: v.rows[0]?.v ?? 'unknown',
    systemIdentifier: sys.rows[0]?.id ?? '',
    timeline: Number(sys.rows[0]?.tli ?? 1),
    databases: dbs.rows.map((r) => r.datname),
    totalBytes: dbs.rows.reduce((s, r) => s + Number(r.size), 0),
    currentLsn: lsn.rows[0]?.lsn ?? '0/0',
  }
}

export async function databaseExists(c: pg.Client, name: string): Promise<boolean> {
  const r = await c.query(`select 1 from pg_database where datname = $1`, [name])
  return (r.rowCount ?? 0) > 0
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"'
}
