import type { ReplicationStatus } from '../../src/api/replication.js'
import { mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { freePort } from '../../src/platform/ports.js'
import { stateLayout, type StateLayout } from '../../src/platform/paths.js'
import { readPostmasterPid } from '../../src/postgres/pidfile.js'
import { stopOrphanInstances } from '../../src/daemon/orphans.js'
import { readKernelInfo } from '../../src/kernel/state.js'
import { cli, type CliResult } from './cli.js'
import { tempDir } from './tmp.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'

/**
 * A MagFlock project in a temp dir with its own free ports and master key, driven through
 * the built CLI. `destroy()` stops whatever it left running (kernel and postmasters).
 */
export interface Flock {
  projectDir: string
  stateDir: string
  layout: StateLayout
  pgPort: number
  metricsPort: number
  env: Record<string, string>
  run<T = unknown>(args: string[], opts?: { env?: Record<string, string>; input?: string }): Promise<CliResult<T>>
  superuserPassword(): Promise<string>
  connect(db?: string): Promise<pg.Client>
  /** One query on a connection of its own (superuser, the primary's port). */
  sql<T = Record<string, unknown>>(db: string, text: string): Promise<T[]>
  postmasterPid(name?: string): Promise<number | undefined>
  destroy(): Promise<void>
}

export async function createFlock(opts: { yaml?: string } = {}): Promise<Flock> {
  const tmp = tempDir('mf-flock-')
  const projectDir = tmp.dir
  const stateDir = path.join(projectDir, '.magflock')
  const pgPort = await freePort()
  const metricsPort = await freePort()
  writeFileSync(
    path.join(projectDir, 'magflock.yaml'),
    opts.yaml ?? `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${metricsPort}\n`,
  )
  mkdirSync(path.join(projectDir, 'migrations'), { recursive: true })
  const env = {
    MAGFLOCK_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
    MAGFLOCK_PREFS_DIR: path.join(projectDir, '.prefs'),
  }
  const layout = stateLayout(stateDir)
  const f: Flock = {
    projectDir,
    stateDir,
    layout,
    pgPort,
    metricsPort,
    env,
    run: (args, o = {}) => cli(args, { cwd: projectDir, env: { ...env, ...(o.env ?? {}) }, ...(o.input !== undefined ? { input: o.input } : {}) }),
    async superuserPassword() {
      const r = await f.run<{ value: string }>(['secrets', 'get', 'postgres.superuser.password', '--reveal', '--json'])
      if (!r.json?.ok) throw new Error(`cannot read superuser password: ${r.stdout} ${r.stderr}`)
      return r.json.data.value
    },
    async connect(db = 'postgres') {
      const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: await f.superuserPassword(), database: db })
      await c.connect()
      return c
    },
    async sql<T = Record<string, unknown>>(db: string, text: string) {
      const c = await f.connect(db)
      try {
        return (await c.query(text)).rows as T[]
      } finally {
        await c.end()
      }
    },
    /** Of the named instance; by default the one topology.json lists as primary. */
    async postmasterPid(name?: string) {
      name ??= (JSON.parse(readFileSync(path.join(stateDir, 'topology.json'), 'utf8')) as { instances: Array<{ name: string; role: string }> }).instances.find((i) => i.role === 'primary')!.name
      return (await readPostmasterPid(layout.dataDir(name)))?.pid
    },
    async destroy() {
      const info = await readKernelInfo(layout).catch(() => undefined)
      if (info && isProcessAliveSync(info.pid)) {
        try {
          process.kill(info.pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      await stopOrphanInstances(layout).catch(() => [])
      tmp.cleanup()
    },
  }
  return f
}

export function readAdminToken(f: Flock): string {
  return readFileSync(f.layout.adminToken, 'utf8').trim()
}

export function instanceNames(f: Flock): string[] {
  try {
    return readdirSync(f.layout.instancesDir)
  } catch {
    return []
  }
}

/**
 * A flock with a kernel (the built CLI's `kernel start`) and one streaming replica, r1: the
 * start of the failover chaos tests. `env` goes to both commands (e.g. a test-only fault hook).
 */
export async function createReplicatedFlock(env: Record<string, string> = {}): Promise<{ f: Flock; pgPort: number; password: string; r1Port: number; list(): Promise<ReplicationStatus> }> {
  const pgPort = await freePort()
  const f = await createFlock({
    yaml: `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\n    wal_log_hints: "on"\nmetrics:\n  port: ${await freePort()}\nreplication:\n  basePort: ${await freePort()}\n`,
  })
  for (const args of [['kernel', 'start', '--json'], ['replica', 'add', 'r1', '--json']]) {
    const r = await f.run(args, { env })
    if (r.exitCode !== 0) throw new Error(`${args.join(' ')} failed: ${r.stdout} ${r.stderr}`)
  }
  const list = async () => {
    const r = await f.run<ReplicationStatus>(['replica', 'list', '--json'])
    if (!r.json?.ok) throw new Error(`replica list failed: ${r.stdout} ${r.stderr}`)
    return r.json.data
  }
  return { f, pgPort, password: await f.superuserPassword(), r1Port: (await list()).members.find((m) => m.name === 'r1')!.port, list }
}
