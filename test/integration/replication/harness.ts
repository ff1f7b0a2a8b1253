import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { postgresRunAs } from '../../../src/platform/os-user.js'
import { freePort } from '../../../src/platform/ports.js'
import { run } from '../../../src/platform/process.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { pgCtlLifecycle, type PgNode, type ReplicationEnv } from '../../../src/replication/pg.js'
import { ReplicationManager, type TopologyRegistry } from '../../../src/replication/manager.js'
import { InMemoryLocks } from '../../../src/kernel/locks.js'
import { stateLayout } from '../../../src/platform/paths.js'
import { KernelClient } from '../../../src/client/index.js'
import { startKernel, type RunningKernel } from '../../../src/daemon/boot.js'
import { SUPERUSER_SECRET } from '../../../src/secrets/names.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'
export { waitFor } from '../../helpers/wait.js'

/**
 * A small flock for replication tests: a real primary from startTestPostgres({replication})
 * plus replica nodes in their own temp dirs. `cleanup()` stops every instance it knows of.
 */
export interface Flock {
  pg: TestPostgres
  env: ReplicationEnv
  primary: PgNode
  newNode(name: string): Promise<PgNode>
  nodes: PgNode[]
  cleanup(): Promise<void>
}

export async function startFlock(conf: Record<string, string | number> = {}): Promise<Flock> {
  const bins = findPgBinaries()
  const runAs = postgresRunAs()
  const pgi = await startTestPostgres({ replication: true, conf: { wal_log_hints: 'on', wal_keep_size: "'64MB'", ...conf } })
  const env: ReplicationEnv = { bins, runAs, superuser: pgi.user, password: pgi.password, lifecycle: pgCtlLifecycle(bins, runAs, 30) }
  const primary: PgNode = { name: 'p0', host: '127.0.0.1', port: pgi.port, instanceDir: pgi.dir, dataDir: pgi.dataDir, logFile: path.join(pgi.dir, 'pg.log') }
  const tmp = tempDir('mf-repl-')
  const nodes: PgNode[] = [primary]
  return {
    pg: pgi,
    env,
    primary,
    nodes,
    async newNode(name) {
      const instanceDir = path.join(tmp.dir, name)
      mkdirSync(instanceDir, { recursive: true })
      const n: PgNode = { name, host: '127.0.0.1', port: await freePort(), instanceDir, dataDir: path.join(instanceDir, 'data'), logFile: path.join(instanceDir, 'postgres.log') }
      nodes.push(n)
      return n
    },
    async cleanup() {
      for (const n of nodes.slice(1)) {
        await run(bins.tool('pg_ctl'), ['-D', n.dataDir, '-m', 'immediate', '-w', 'stop'], { runAs, reject: false })
      }
      await pgi.stop()
      tmp.cleanup()
    },
  }
}

export function conn(f: Flock, n: PgNode): pg.ClientConfig {
  return { host: n.host, port: n.port, user: f.env.superuser, password: f.env.password, database: 'postgres', connectionTimeoutMillis: 1000 }
}

export async function q<R extends pg.QueryResultRow = pg.QueryResultRow>(f: Flock, n: PgNode, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client(conn(f, n))
  c.on('error', () => undefined)
  await c.connect()
  try {
    return (await c.query<R>(text, params)).rows
  } finally {
    await c.end().catch(() => undefined)
  }
}

/**
 * A client write loop like the Patroni anchor's writer: one persistent session, one INSERT
 * every `everyMs`; when the session fails it reconnects to whichever node accepts writes
 * (like libpq's target_session_attrs=read-write). Every acknowledged seq is recorded.
 */
export class Writer {
  readonly acked: number[] = []
  readonly failed: number[] = []
  readonly ackedAt: number[] = []
  private stopped = false
  private done: Promise<void> | undefined
  private seq = 0

  constructor(private readonly f: Flock, private readonly table: string, private readonly everyMs = 20) {}

  start(): void {
    this.done = this.loop()
  }

  private async connectWritable(): Promise<pg.Client | undefined> {
    for (const n of this.f.nodes) {
      const c = new pg.Client({ ...conn(this.f, n), connectionTimeoutMillis: 500 })
      c.on('error', () => undefined)
      try {
        await c.connect()
        const r = await c.query<{ ro: boolean }>('select pg_is_in_recovery() as ro')
        if (!r.rows[0]?.ro) return c
      } catch {
        // try the next node
      }
      await c.end().catch(() => undefined)
    }
    return undefined
  }

  private async loop(): Promise<void> {
    let c: pg.Client | undefined
    while (!this.stopped) {
      const seq = ++this.seq
      const t0 = Date.now()
      try {
        c ??= await this.connectWritable()
        if (!c) throw new Error('no writable node')
        await c.query(`insert into ${this.table}(seq) values ($1)`, [seq])
        this.acked.push(seq)
        this.ackedAt.push(Date.now())
      } catch {
        this.failed.push(seq)
        await c?.end().catch(() => undefined)
        c = undefined
      }
      const wait = this.everyMs - (Date.now() - t0)
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
    await c?.end().catch(() => undefined)
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.done
  }

  /** Longest gap between two acknowledged writes (ms). */
  maxGapMs(): number {
    let m = 0
    for (let i = 1; i < this.ackedAt.length; i++) m = Math.max(m, (this.ackedAt[i] as number) - (this.ackedAt[i - 1] as number))
    return m
  }
}


/** An in-memory TopologyRegistry over the flock's nodes (no kernel, no supervisor). */
export function memoryRegistry(f: Flock, roles: Record<string, 'primary' | 'replica' | 'fenced'>): TopologyRegistry & { roles: Record<string, string> } {
  const r = { ...roles }
  return {
    roles: r,
    list: () => f.nodes.filter((n) => r[n.name]).map((n) => ({ name: n.name, role: r[n.name] as 'primary' | 'replica' | 'fenced', node: n })),
    async addInstance(node, role) {
      if (!f.nodes.includes(node)) f.nodes.push(node)
      r[node.name] = role
    },
    async removeInstance(name) {
      delete r[name]
    },
    async setRole(name, role) {
      r[name] = role
    },
  }
}

export function managerFor(f: Flock, registry: TopologyRegistry, stateDir: string, events: Array<{ type: string; payload: unknown }> = []): ReplicationManager {
  return new ReplicationManager({
    layout: stateLayout(stateDir),
    bins: f.env.bins,
    runAs: f.env.runAs,
    superuser: f.env.superuser,
    password: async () => f.env.password,
    registry,
    locks: new InMemoryLocks(),
    events: { publish: (type, payload) => (events.push({ type, payload }), true) },
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    lifecycle: f.env.lifecycle,
    basePort: 20000,
    noSync: true,
  })
}

/**
 * Split-brain hunt: samples every node every few ms and records any moment when more than
 * one of them accepts writes (pg_is_in_recovery() = false).
 */
export class SplitBrainHunter {
  readonly violations: string[] = []
  samples = 0
  private stopped = false
  private done: Promise<void> | undefined
  constructor(private readonly f: Flock) {}
  start(): void {
    this.done = (async () => {
      const clients = new Map<string, pg.Client>()
      while (!this.stopped) {
        const writable: string[] = []
        await Promise.all(
          this.f.nodes.map(async (n) => {
            try {
              let c = clients.get(n.name)
              if (!c) {
                c = new pg.Client({ ...conn(this.f, n), connectionTimeoutMillis: 300 })
                c.on('error', () => undefined)
                clients.set(n.name, c)
                await c.connect()
              }
              const r = await c.query<{ rec: boolean }>('select pg_is_in_recovery() as rec')
              if (r.rows[0]?.rec === false) writable.push(n.name)
            } catch {
              const c = clients.get(n.name)
              clients.delete(n.name)
              await c?.end().catch(() => undefined)
            }
          }),
        )
        this.samples++
        if (writable.length > 1) this.violations.push(`${new Date().toISOString()} ${writable.join('+')}`)
        await new Promise((r) => setTimeout(r, 5))
      }
      for (const c of clients.values()) await c.end().catch(() => undefined)
    })()
  }
  async stop(): Promise<void> {
    this.stopped = true
    await this.done
  }
}

/**
 * A real in-process kernel in a temp state dir (fsync off, wal_log_hints on for pg_rewind,
 * replicas from a free base port), its typed client, and SQL as the superuser.
 */
export interface KernelFlock {
  k: RunningKernel
  client: KernelClient
  dir: string
  password: string
  pgPort: number
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(port: number, text: string, params?: unknown[]): Promise<R[]>
  stop(): Promise<void>
}

export async function startKernelFlock(prefix: string): Promise<KernelFlock> {
  process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 9).toString('base64')
  const t = tempDir(prefix)
  const pgPort = await freePort()
  const metricsPort = await freePort()
  const basePort = await freePort()
  writeFileSync(
    path.join(t.dir, 'magflock.yaml'),
    `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\n    wal_log_hints: "on"\nmetrics:\n  port: ${metricsPort}\nreplication:\n  basePort: ${basePort}\n`,
  )
  const k = await startKernel({ stateDir: path.join(t.dir, '.magflock'), projectDir: t.dir })
  const password = (await k.services.secrets.get(SUPERUSER_SECRET)) ?? ''
  return {
    k,
    client: new KernelClient(stateLayout(path.join(t.dir, '.magflock'))),
    dir: t.dir,
    password,
    pgPort,
    async query<R extends pg.QueryResultRow>(port: number, text: string, params: unknown[] = []) {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' })
      await c.connect()
      try {
        return (await c.query<R>(text, params)).rows
      } finally {
        await c.end()
      }
    },
    async stop() {
      await k.shutdown({ keepPostgres: false, reason: 'test' })
      t.cleanup()
    },
  }
}
