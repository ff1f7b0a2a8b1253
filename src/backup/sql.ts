import pg from 'pg'

/** The few SQL statements backups need, as functions over one short-lived connection. */
export async function withClient<T>(conn: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...conn, application_name: 'magflock-backup' })
  // A server that dies while the client is idle (between two queries) emits 'error' on it;
  // without a listener that is an uncaught exception, and the kernel would exit. The next
  // query rejects instead.
  c.on('error', () => undefined)
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

/** One round trip: it is on the critical path of every backup. */
export async function sourceInfo(c: pg.Client): Promise<SourceInfo> {
  const r = await c.query<{ v: string; id: string; tli: number; lsn: string; dbs: Array<{ datname: string; size: string }> | null }>(
    `select current_setting('server_version') as v,
            (select system_identifier::text from pg_control_system()) as id,
            (select timeline_id from pg_control_checkpoint()) as tli,
            (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text as lsn, -- a standby too (prefer-standby)
            (select json_agg(json_build_object('datname', datname, 'size', pg_database_size(oid)::text) order by datname)
               from pg_database where datallowconn) as dbs`,
  )
  const row = r.rows[0]
  const dbs = row?.dbs ?? []
  return {
    pgVersion: row?.v ?? 'unknown',
    systemIdentifier: row?.id ?? '',
    timeline: Number(row?.tli ?? 1),
    databases: dbs.map((d) => d.datname),
    totalBytes: dbs.reduce((s, d) => s + Number(d.size), 0),
    currentLsn: row?.lsn ?? '0/0',
  }
}

export async function databaseExists(c: pg.Client, name: string): Promise<boolean> {
  const r = await c.query(`select 1 from pg_database where datname = $1`, [name])
  return (r.rowCount ?? 0) > 0
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"'
}
