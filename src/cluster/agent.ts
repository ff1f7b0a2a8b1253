import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { postgresRunAs } from '../platform/os-user.js'
import { run } from '../platform/process.js'
import { writeFileAtomic } from '../platform/fs.js'
import { findPgBinaries } from '../postgres/binaries.js'
import { chownTree, pgCtlLifecycle, type PgNode, type ReplicationEnv } from '../replication/pg.js'
import { EtcdFlockStore } from './etcd-store.js'
import { DEFAULT_LEASE_MS } from './leader-view.js'
import { bootstrapNode, startNodeHa } from './node-boot.js'
import { NodeSwitchover, requestSwitchover } from './switchover.js'

/**
 * One node of a multi-host flock as a process: bootstraps its local instance (the first node
 * initialises the primary, a joining node clones the current leader), registers itself in the
 * flock store, then runs the NodeHa loop until SIGTERM. The same bootstrap (node-boot.ts) runs
 * inside the kernel (`magflock up --etcd … --node NAME`, `magflock node join`); this process
 * without a kernel stays for the multi-host chaos test and bench/multihost.mjs.
 *
 * Like a kernel node it carries out switchover requests recorded for it in the flock store
 * (NodeSwitchover); `agent.js switchover CONFIG.json [TO]` records one and waits for its result,
 * the same path as `magflock switchover --to` on a kernel node (requestSwitchover).
 *
 * Secrets: the superuser password comes from MAGFLOCK_AGENT_PASSWORD (never argv or the
 * config file). Output: one JSON line per decision on stdout.
 */
export const AgentConfig = z.object({
  node: z.string().regex(/^[a-z][a-z0-9_]{0,39}$/),
  flock: z.string().regex(/^[a-z][a-z0-9_-]{0,39}$/),
  etcd: z.array(z.string()).min(1),
  /** Address Postgres listens on and other nodes reach it at. */
  listen: z.string(),
  port: z.number().int().min(1).max(65535),
  /** Client and replication connections are allowed from this network (scram). */
  allowCidr: z.string(),
  instanceDir: z.string(),
  bootstrap: z.enum(['primary', 'replica']),
  /** An initdb'd data directory to copy instead of running initdb (tests). */
  template: z.string().optional(),
  mode: z.enum(['sync', 'async']).default('sync'),
  ttlMs: z.number().default(DEFAULT_LEASE_MS),
  marginMs: z.number().default(1000),
  loopMs: z.number().default(250),
  /** Time between successful lease renewals (NodeHaOptions.renewMs; default every tick). */
  renewMs: z.number().optional(),
})
export type AgentConfig = z.infer<typeof AgentConfig>

function out(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + '\n')
}

export async function runAgent(cfg: AgentConfig, password: string): Promise<() => Promise<void>> {
  const bins = findPgBinaries()
  const runAs = postgresRunAs()
  const name = `${cfg.node}_1`
  const local: PgNode = {
    name,
    host: cfg.listen,
    port: cfg.port,
    instanceDir: cfg.instanceDir,
    dataDir: path.join(cfg.instanceDir, 'data'),
    logFile: path.join(cfg.instanceDir, 'postgres.log'),
  }
  const env: ReplicationEnv = {
    bins,
    runAs,
    superuser: 'postgres',
    password,
    lifecycle: pgCtlLifecycle(bins, runAs, 60),
    log: (msg, fields) => out({ log: msg, ...fields }),
  }
  const store = new EtcdFlockStore({ endpoints: cfg.etcd, flock: cfg.flock, callTimeoutMs: Math.min(1000, cfg.ttlMs / 3) })
  const leadership = store.leadership(cfg.node, { ttlMs: cfg.ttlMs })
  await fsp.mkdir(cfg.instanceDir, { recursive: true, mode: 0o700 })
  await chownTree(env, cfg.instanceDir)

  const init = async () => {
    if (cfg.template) await run('cp', ['-a', cfg.template, local.dataDir])
    else {
      const pw = path.join(cfg.instanceDir, 'pw')
      await writeFileAtomic(pw, password, { mode: 0o600, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) })
      await run(bins.tool('initdb'), ['-D', local.dataDir, '-U', 'postgres', '--pwfile', pw, '--auth=scram-sha-256', '-k', '--no-sync'], { runAs })
      await fsp.rm(pw, { force: true })
    }
    const conf = {
      port: cfg.port,
      listen_addresses: `'${cfg.listen}'`,
      unix_socket_directories: `'${cfg.instanceDir}'`,
      wal_level: 'replica',
      hot_standby: 'on',
      wal_log_hints: 'on',
      max_wal_senders: 10,
      max_replication_slots: 10,
      wal_keep_size: "'256MB'",
      wal_retrieve_retry_interval: "'250ms'",
    }
    const own = runAs ? { uid: runAs.uid, gid: runAs.gid } : {}
    await writeFileAtomic(path.join(local.dataDir, 'postgresql.auto.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n', { mode: 0o600, ...own })
    const hba = `local all all scram-sha-256\nhost all all ${cfg.allowCidr} scram-sha-256\nhost replication all ${cfg.allowCidr} scram-sha-256\n`
    await writeFileAtomic(path.join(local.dataDir, 'pg_hba.conf'), hba, { mode: 0o600, ...own })
  }
  await bootstrapNode({
    node: cfg.node,
    address: cfg.listen,
    bootstrap: cfg.bootstrap,
    mode: cfg.mode,
    ttlMs: cfg.ttlMs,
    marginMs: cfg.marginMs,
    local,
    env,
    store,
    leadership,
    init,
    log: (msg, fields) => out({ log: msg, ...fields }),
  })

  const ha = startNodeHa({
    node: cfg.node,
    store,
    leadership,
    env,
    local,
    mode: cfg.mode,
    ttlMs: cfg.ttlMs,
    marginMs: cfg.marginMs,
    loopMs: cfg.loopMs,
    ...(cfg.renewMs !== undefined ? { renewMs: cfg.renewMs } : {}),
    log: (msg, fields) => out({ log: msg, ...fields }),
    onDecision: (d) => out({ decision: d.action, sentence: d.sentence }),
  })
  const switchovers = new NodeSwitchover({ node: cfg.node, store, leadership, ha, env, local, mode: cfg.mode, log: (msg, fields) => out({ log: msg, ...fields }) })
  switchovers.start()
  out({ ready: cfg.node })
  return async () => {
    await switchovers.stop()
    await ha.stop()
    await store.close()
  }
}

/** Records a switchover request for the leader's node and waits for its result (one JSON line). */
async function switchover(cfg: AgentConfig, to: string | undefined): Promise<void> {
  const store = new EtcdFlockStore({ endpoints: cfg.etcd, flock: cfg.flock, callTimeoutMs: Math.min(1000, cfg.ttlMs / 3) })
  try {
    const r = await requestSwitchover({ store, leadership: store.leadership(cfg.node), mode: cfg.mode }, to)
    out({ switchover: r })
  } finally {
    await store.close()
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'switchover') {
    const file = process.argv[3]
    if (!file) throw new Error('usage: agent.js switchover CONFIG.json [TO]')
    return switchover(AgentConfig.parse(JSON.parse(await fsp.readFile(file, 'utf8'))), process.argv[4])
  }
  const file = process.argv[2]
  if (!file) throw new Error('usage: agent.js CONFIG.json | agent.js switchover CONFIG.json [TO]')
  const cfg = AgentConfig.parse(JSON.parse(await fsp.readFile(file, 'utf8')))
  const stop = await runAgent(cfg, process.env.MAGFLOCK_AGENT_PASSWORD ?? '')
  const bye = () => void stop().finally(() => process.exit(0))
  process.once('SIGTERM', bye)
  process.once('SIGINT', bye)
}

if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  main().then(() => {
    if (process.argv[2] === 'switchover') process.exit(0)
  }, (err: unknown) => {
    out({ fatal: (err as Error).message })
    process.exit(1)
  })
}
