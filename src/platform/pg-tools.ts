/**
 * The located Postgres client and server tools, as every layer sees them (the kernel's
 * services, domains, adapters). Discovery itself lives in src/postgres/binaries.ts.
 */
export type BinSource = 'config' | 'pg_config' | 'system' | 'embedded'

export interface PgBinaries {
  binDir: string
  source: BinSource
  version: string
  major: number
  /** Absolute path of a tool; throws E_BINARY_MISSING naming it when absent. */
  tool(name: PgTool): string
  has(name: PgTool): boolean
}

export type PgTool =
  | 'postgres'
  | 'initdb'
  | 'pg_ctl'
  | 'pg_isready'
  | 'psql'
  | 'pg_dump'
  | 'pg_restore'
  | 'pg_basebackup'
  | 'pg_receivewal'
  | 'pg_rewind'
  | 'pg_verifybackup'
  | 'pg_controldata'
  | 'pg_waldump'
  | 'pg_archivecleanup'
  | 'pgbench'
