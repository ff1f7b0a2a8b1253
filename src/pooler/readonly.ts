import { promises as fsp } from 'node:fs'
import path from 'node:path'
import type { ClientConfig } from 'pg'
import type { OsUser } from '../platform/os-user.js'
import { PRIMARY, type PoolerLayout } from './ini.js'

/**
 * The read-only pool (docs/pooling.md): for every database D of the flock, PgBouncer serves
 * `D.ro`, spread over the streaming replicas whose replay lag is within `pooler.readOnly.maxLagBytes`.
 *
 * PgBouncer 1.18 round-robins new server connections over a host list, but a host list has
 * one port, and replicas on one host listen on different ports. Each replica's Unix socket is
 * therefore linked under a directory of its own with one shared "virtual" port:
 *
 *   <state>/pooler/ro/<replica>/.s.PGSQL.<vport>  ->  <instance dir>/.s.PGSQL.<port>
 *
 * and the database line says `host=<state>/pooler/ro/r1,<state>/pooler/ro/r2 port=<vport>`.
 * Replicas on other hosts (same port everywhere) are a plain TCP host list. When no replica
 * qualifies, `D.ro` falls back to the primary with `default_transaction_read_only` set on each
 * server connection (a guard against mistakes, not a security boundary: a client may SET it off).
 */
export interface ReadOnlyCandidate {
  name: string
  host: string
  port: number
  /** The instance's Unix socket directory, '' when it has none (path too long). */
  socketDir: string
  /** From the primary's pg_stat_replication; undefined when the replica is not connected. */
  state: string | undefined
  lagBytes: number | undefined
}

export type ReadOnlyRoute =
  | { kind: 'sockets'; dirs: string[]; port: number }
  | { kind: 'tcp'; hosts: string[]; port: number }
  | { kind: 'primary' }

export interface ReadOnlyPlan {
  /** Replicas that serve `D.ro`, in name order. */
  serving: string[]
  excluded: Array<{ name: string; reason: string }>
  route: ReadOnlyRoute
  /** Set when fewer replicas serve than qualify (one host, no Unix sockets: one port per entry). */
  note?: string
}

/** The socket directory of `name` under the pooler dir, and the symlink inside it. */
export function roLink(layout: PoolerLayout, name: string, vport: number): { dir: string; link: string } {
  const dir = path.join(layout.dir, 'ro', name)
  return { dir, link: path.join(dir, `.s.PGSQL.${vport}`) }
}

/** A Unix socket path must fit sockaddr_un.sun_path (108 bytes with the NUL). */
const SUN_PATH_MAX = 107

const LOCAL = new Set(['127.0.0.1', 'localhost', '::1'])

/** Which replicas serve reads, and how PgBouncer reaches them. Pure. */
export function planReadOnly(candidates: ReadOnlyCandidate[], opts: { maxLagBytes: number; layout: PoolerLayout; vport: number }): ReadOnlyPlan {
  const excluded: ReadOnlyPlan['excluded'] = []
  const ok: ReadOnlyCandidate[] = []
  for (const c of [...candidates].sort((a, b) => a.name.localeCompare(b.name))) {
    if (c.state !== 'streaming') excluded.push({ name: c.name, reason: c.state ? `not streaming (${c.state})` : 'not connected to the primary' })
    else if (c.lagBytes === undefined || c.lagBytes > opts.maxLagBytes) excluded.push({ name: c.name, reason: `replay lag ${c.lagBytes ?? '?'} bytes > ${opts.maxLagBytes}` })
    else ok.push(c)
  }
  if (ok.length === 0) return { serving: [], excluded, route: { kind: 'primary' } }
  const linkable = ok.every((c) => LOCAL.has(c.host) && c.socketDir !== '' && Buffer.byteLength(roLink(opts.layout, c.name, opts.vport).link) <= SUN_PATH_MAX)
  if (linkable) return { serving: ok.map((c) => c.name), excluded, route: { kind: 'sockets', dirs: ok.map((c) => roLink(opts.layout, c.name, opts.vport).dir), port: opts.vport } }
  const port = ok[0]!.port
  if (ok.every((c) => c.port === port)) return { serving: ok.map((c) => c.name), excluded, route: { kind: 'tcp', hosts: ok.map((c) => c.host), port } }
  // Different ports and no socket to link: one replica (the least lagged) serves.
  const best = [...ok].sort((a, b) => (a.lagBytes ?? 0) - (b.lagBytes ?? 0))[0]!
  for (const c of ok) if (c !== best) excluded.push({ name: c.name, reason: 'not linkable (no Unix socket) and on another port than ' + best.name })
  return { serving: [best.name], excluded, route: { kind: 'tcp', hosts: [best.host], port: best.port }, note: 'round robin needs Unix sockets or one port on every replica' }
}

/**
 * Makes `<state>/pooler/ro/` hold exactly the links the plan uses (owned by the Postgres OS
 * user, which PgBouncer runs as). A link is replaced only when its target changed.
 */
export async function syncLinks(layout: PoolerLayout, candidates: ReadOnlyCandidate[], plan: ReadOnlyPlan, vport: number, runAs: OsUser | undefined): Promise<void> {
  const root = path.join(layout.dir, 'ro')
  await fsp.mkdir(root, { recursive: true, mode: 0o700 })
  if (runAs) await fsp.chown(root, runAs.uid, runAs.gid)
  const want = new Map<string, string>()
  if (plan.route.kind === 'sockets') {
    for (const name of plan.serving) {
      const c = candidates.find((x) => x.name === name)!
      want.set(name, path.join(c.socketDir, `.s.PGSQL.${c.port}`))
    }
  }
  for (const entry of await fsp.readdir(root)) {
    if (!want.has(entry)) await fsp.rm(path.join(root, entry), { recursive: true, force: true })
  }
  for (const [name, target] of want) {
    const { dir, link } = roLink(layout, name, vport)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    if (runAs) await fsp.chown(dir, runAs.uid, runAs.gid)
    const current = await fsp.readlink(link).catch(() => undefined)
    if (current === target) continue
    // Other virtual ports (pooler.port changed) and a stale link go first.
    for (const f of await fsp.readdir(dir)) await fsp.rm(path.join(dir, f), { force: true })
    await fsp.symlink(target, link)
    if (runAs) await fsp.lchown(link, runAs.uid, runAs.gid)
  }
}

/** The libpq-style part of a `[databases]` line for the route (without dbname). */
export function routeConnect(route: ReadOnlyRoute): string {
  switch (route.kind) {
    case 'sockets':
      return `host=${route.dirs.join(',')} port=${route.port}`
    case 'tcp':
      return `host=${route.hosts.join(',')} port=${route.port}`
    case 'primary':
      return `${PRIMARY} connect_query='SET default_transaction_read_only = on'`
  }
}

/**
 * What the pooler reads from the primary on each refresh, in one round trip: the flock's
 * databases (those PgBouncer may serve), each replica's stream, and the login roles with a
 * SCRAM secret (PgBouncer's userlist).
 */
export interface PrimaryView {
  databases: string[]
  senders: Map<string, { state: string; lagBytes: number }>
  roles: Array<{ name: string; secret: string }>
}

export async function readPrimaryView(conn: ClientConfig): Promise<PrimaryView> {
  const pg = (await import('pg')).default
  const c = new pg.Client({ ...conn, connectionTimeoutMillis: 2000 })
  c.on('error', () => undefined)
  await c.connect()
  try {
    const r = await c.query<{ databases: string[] | null; senders: Array<{ name: string; state: string; lag: string | null }> | null; roles: Array<{ name: string; secret: string }> | null }>(
      `select (select array_agg(datname::text order by datname) from pg_database where datallowconn and not datistemplate) as databases,
              (select json_agg(json_build_object('name', application_name, 'state', state,
                        'lag', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text))
                 from pg_stat_replication where application_name <> 'pg_basebackup') as senders,
              (select json_agg(json_build_object('name', rolname, 'secret', rolpassword) order by rolname)
                 from pg_authid where rolcanlogin and rolpassword like 'SCRAM-SHA-256$%') as roles`,
    )
    const row = r.rows[0]
    const senders = new Map<string, { state: string; lagBytes: number }>()
    for (const s of row?.senders ?? []) senders.set(s.name, { state: s.state, lagBytes: s.lag === null ? Number.POSITIVE_INFINITY : Number(s.lag) })
    return { databases: row?.databases ?? [], senders, roles: row?.roles ?? [] }
  } finally {
    await c.end().catch(() => undefined)
  }
}
