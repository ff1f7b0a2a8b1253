import { isIP } from 'node:net'
import { z } from 'zod'
import { RepositoriesConfig, RetentionPolicyConfig } from './repository.js'

/**
 * The single source of truth for MagFlock's configuration: keys, types, defaults and the
 * text `magflock config show --explain` and docs/configuration.md print. Every key has a
 * default, so an empty magflock.yaml is a valid one.
 *
 * A string value of the form `secret:NAME` is a reference into the vault, resolved only in
 * the kernel at the moment of use.
 */
const port = z.number().int().min(1).max(65535)

export const PostgresConfig = z
  .object({
    port: port.default(5433).describe('TCP port of the primary instance (127.0.0.1).'),
    host: z.literal('127.0.0.1').default('127.0.0.1').describe('Listen address; loopback only for now.'),
    listen: z
      .array(z.string().refine((a) => isIP(a) !== 0, { message: 'must be an IPv4 or IPv6 address' }))
      .min(1)
      .default(['127.0.0.1'])
      .describe('Addresses the primary and replicas listen on (127.0.0.1 is always included). A non-loopback address needs TLS (`magflock tls init`): remote clients and replication must use hostssl with SCRAM.'),
    binDir: z.string().optional().describe('Directory holding postgres, initdb, pg_ctl…; discovered when unset.'),
    osUser: z.string().default('postgres').describe('Unprivileged OS user Postgres runs as when the kernel is root.'),
    superuser: z.string().default('postgres').describe('Name of the bootstrap superuser role.'),
    database: z.string().default('postgres').describe('Database that status and metrics connect to.'),
    startTimeoutSeconds: z.number().int().min(1).max(3600).default(60).describe('How long to wait for Postgres to accept connections.'),
    settings: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
      .default({})
      .describe('Extra postgresql.conf settings, written to the instance config.'),
  })
  .strict()

export const KernelConfig = z
  .object({
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info').describe('Kernel log level.'),
    restart: z
      .object({
        maxRestarts: z.number().int().min(0).max(1000).default(5).describe('Restarts allowed within windowSeconds before an instance is marked failed.'),
        windowSeconds: z.number().int().min(1).max(86_400).default(60).describe('Window for counting restarts.'),
        initialBackoffMs: z.number().int().min(10).max(600_000).default(200).describe('Delay before the first restart; doubles each time.'),
        maxBackoffMs: z.number().int().min(10).max(600_000).default(10_000).describe('Upper bound of the restart delay.'),
      })
      .strict()
      .default({ maxRestarts: 5, windowSeconds: 60, initialBackoffMs: 200, maxBackoffMs: 10_000 })
      .describe('Restart policy for supervised Postgres instances.'),
    events: z
      .object({
        journalSegmentBytes: z.number().int().min(4096).max(1024 * 1024 * 1024).default(4 * 1024 * 1024).describe('Size at which the event journal starts a new segment file (<state>/events/).'),
        journalSegments: z.number().int().min(2).max(1000).default(8).describe('Journal segments kept; the oldest is deleted beyond this (readers with an older cursor are told they missed events).'),
        readerMaxQueuedBytes: z.number().int().min(16 * 1024).max(256 * 1024 * 1024).default(4 * 1024 * 1024).describe('Events queued for one slow GET /v1/events reader before it is disconnected with a stream.closed line.'),
      })
      .strict()
      .default({ journalSegmentBytes: 4 * 1024 * 1024, journalSegments: 8, readerMaxQueuedBytes: 4 * 1024 * 1024 })
      .describe('Event journal and /v1/events readers (docs/extensions.md).'),
  })
  .strict()

export const MetricsConfig = z
  .object({
    enabled: z.boolean().default(true).describe('Serve Prometheus metrics on 127.0.0.1.'),
    port: port.default(9187).describe('Port of the Prometheus endpoint.'),
  })
  .strict()

export const MigrationsConfig = z
  .object({
    dir: z.string().default('./migrations').describe('Folder of numbered migration files.'),
    lockTimeoutSeconds: z.number().int().min(1).max(3600).default(60).describe('How long `db migrate` waits for the migration lock.'),
  })
  .strict()

export const BackupConfig = z
  .object({
    compression: z.enum(['lz4', 'zstd', 'gzip', 'none']).default('lz4').describe('Compression for backups.'),
    schedule: z.string().optional().describe('Cron expression for scheduled backups, e.g. "0 3 * * *".'),
    encryptionKey: z.string().optional().describe('Vault reference (secret:NAME) of the key-encryption key.'),
    walArchiving: z.boolean().default(true).describe('Stream WAL into <state>/wal for point-in-time recovery.'),
    repositories: RepositoriesConfig.describe('Object-store repositories every backup and WAL segment is also written to (docs/backup.md).'),
    retention: RetentionPolicyConfig.default({}).describe('Retention applied after each scheduled backup (local repository; default of the others).'),
    source: z.enum(['primary', 'prefer-standby']).default('primary').describe('Where physical backups read from: prefer-standby uses a healthy replica when the flock has one.'),
    walCacheSegments: z.number().int().min(1).default(64).describe('With object-store repositories: WAL segments kept in <state>/wal once stored everywhere.'),
  })
  .strict()

export const ReplicationConfig = z
  .object({
    failover: z
      .object({
        enabled: z.boolean().default(true).describe('Promote a replica automatically when the primary is lost.'),
        /** How long the primary may be down (and not restartable) before a replica is promoted. */
        graceSeconds: z.number().min(0).max(3600).default(1).describe('How long the primary may be down (and not restartable) before a replica is promoted.'),
      })
      .strict()
      .default({ enabled: true, graceSeconds: 1 }),
    basePort: port.default(5434).describe('First port for replicas; each new replica takes the next free one.'),
  })
  .strict()

export const RealtimeConfig = z
  .object({
    enabled: z.boolean().default(false).describe('Serve database changes, broadcast and presence over WebSockets (Supabase Realtime protocol). Sets wal_level = logical (restarts the primary once).'),
    host: z.literal('127.0.0.1').default('127.0.0.1').describe('Listen address of the WebSocket server; loopback only for now.'),
    port: port.default(4000).describe('Port of the WebSocket server (ws://127.0.0.1:<port>/realtime/v1/websocket).'),
    database: z.string().default('postgres').describe('Database whose changes are streamed (its publication magflock_realtime and slot magflock_realtime).'),
    slotMaxRetainedMB: z.number().int().min(16).max(1_048_576).default(1024).describe('WAL the realtime slot may hold back (MiB) before it is dropped and re-created; clients are told changes may have been missed.'),
    maxMessageBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(1024 * 1024).describe('Largest WebSocket frame a client may send; larger frames close the socket (1009).'),
    maxBufferedBytes: z.number().int().min(64 * 1024).max(256 * 1024 * 1024).default(8 * 1024 * 1024).describe('Per-client send buffer cap; a client that falls this far behind is disconnected (1008, "slow consumer").'),
    maxChannelsPerClient: z.number().int().min(1).max(10_000).default(100).describe('Channels one WebSocket may join at once.'),
    nativeWrites: z.boolean().default(true).describe('Write frames with the native socket writer where it is built (dist/native, by npm run build with a C compiler): one call writes a batch of sockets. false: each socket is written through Node. realtime status shows which runs.'),
    yieldCpu: z.boolean().default(true).describe('Between flush slices that leave writes pending, let other threads runnable on the core run first (sched_yield, from the native part built with the writer): Postgres\'s walsender and committing backends on the same host then wait less behind a busy fan-out. The fan-out keeps its share of the CPU. false: the flush runs until the scheduler preempts it.'),
  })
  .strict()

export const PoolerReadOnlyConfig = z
  .object({
    enabled: z.boolean().default(true).describe('Serve `<database>.ro`, round robin over the streaming replicas (the primary, read-only, when none qualifies).'),
    maxLagBytes: z.number().int().min(0).max(2 ** 40).default(16 * 1024 * 1024).describe('A replica whose replay lags the primary by more bytes leaves the read-only pool until it catches up.'),
  })
  .strict()

export const PoolerConfig = z
  .object({
    enabled: z.boolean().default(false).describe('Run a managed PgBouncer in front of the primary (docs/pooling.md).'),
    port: port.default(6432).describe('TCP port PgBouncer listens on.'),
    host: z.literal('127.0.0.1').default('127.0.0.1').describe('Listen address of PgBouncer; loopback only for now.'),
    poolMode: z.enum(['transaction', 'session', 'statement']).default('transaction').describe('When a server connection returns to the pool: after each transaction, session or statement.'),
    defaultPoolSize: z.number().int().min(1).max(10_000).default(20).describe('Server connections per database/user pair.'),
    maxClientConn: z.number().int().min(1).max(100_000).default(1000).describe('Client connections PgBouncer accepts in all.'),
    readOnly: PoolerReadOnlyConfig.default(PoolerReadOnlyConfig.parse({})),
  })
  .strict()

export const TlsConfig = z
  .object({
    nodeName: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/).optional().describe('Name of this node in its certificate (CN and a DNS SAN); the host name when unset.'),
    sans: z.array(z.string().min(1).max(253)).default([]).describe('Extra DNS names or IP addresses for the node certificate (postgres.listen and api.listen addresses are always included).'),
    certDays: z.number().int().min(1).max(3650).default(365).describe('Lifetime of node and client certificates issued by `magflock tls init|rotate`.'),
    caDays: z.number().int().min(30).max(36_500).default(3650).describe('Lifetime of the flock CA created by `magflock tls init`.'),
    caFile: z.string().optional().describe("The operator's own CA certificate (PEM file). With certFile and keyFile it replaces the flock CA MagFlock creates."),
    certFile: z.string().optional().describe("The operator's own node certificate (PEM file), signed by caFile."),
    keyFile: z.string().optional().describe("The operator's own node key (PEM file, or secret:NAME for a key kept in the vault)."),
  })
  .strict()

export const ApiConfig = z
  .object({
    listen: z
      .string()
      .regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}$/, { message: 'must be ADDRESS:PORT, e.g. 10.0.0.1:7543' })
      .optional()
      .describe('ADDRESS:PORT of the control API over TCP with mutual TLS (a client certificate signed by the flock CA, plus a token). Unset: Unix socket only.'),
  })
  .strict()

export const HealthConfig = z
  .object({
    enabled: z.boolean().default(false).describe('Serve Patroni-compatible health endpoints (GET /primary, /replica, /read-write, /read-only, /health, /liveness, /readiness) for load balancers, one plain-HTTP port per instance.'),
    host: z.string().refine((a) => isIP(a) !== 0, { message: 'must be an IP address' }).default('127.0.0.1').describe('Listen address of the health endpoints (read-only, no secrets).'),
    portOffset: z.number().int().min(1).max(60_000).default(3000).describe("An instance's health port is its Postgres port plus this offset (5433 → 8433), like one Patroni REST API per member."),
  })
  .strict()

export const MagflockConfig = z
  .object({
    flock: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/).default('default').describe('Name of this flock (lowercase).'),
    postgres: PostgresConfig.default(PostgresConfig.parse({})),
    kernel: KernelConfig.default(KernelConfig.parse({})),
    metrics: MetricsConfig.default(MetricsConfig.parse({})),
    migrations: MigrationsConfig.default(MigrationsConfig.parse({})),
    backup: BackupConfig.default(BackupConfig.parse({})),
    replication: ReplicationConfig.default(ReplicationConfig.parse({})),
    realtime: RealtimeConfig.default(RealtimeConfig.parse({})),
    pooler: PoolerConfig.default(PoolerConfig.parse({})),
    tls: TlsConfig.default(TlsConfig.parse({})),
    api: ApiConfig.default(ApiConfig.parse({})),
    health: HealthConfig.default(HealthConfig.parse({})),

    extensions: z
      .record(z.string().regex(/^[a-z][a-z0-9-]{0,23}$/), z.record(z.string(), z.unknown()))
      .default({})
      .describe('Settings of each extension, by extension name; each checked against its manifest and readable only by it (`config:read`, docs/extensions.md).'),
  })
  .strict()

export type MagflockConfig = z.infer<typeof MagflockConfig>

export function defaultConfig(): MagflockConfig {
  return MagflockConfig.parse({})
}
