import { z } from 'zod'
import { ADMIN_ONLY, ALL_ROLES, defineRoute } from './route.js'

/**
 * Backups: `magflock backup create|list|verify|restore|prune|rekey`. Long operations stream
 * NDJSON progress with bytesDone/bytesTotal so the CLI can show rate and ETA.
 */
const BACKUP_ROLES = ['admin', 'operator', 'ci'] as const
/** A backup id names a directory under <state>/backups: never `.`, `..` or a path. */
const BACKUP_ID = z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/, "a backup id or 'latest' (letters, digits, ., _ and -, not starting with a dot)")
/** `--repo NAME`: "local" (the state directory, default) or a configured object-store repository. */
const Repo = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/).optional()
const OPS = ['admin', 'operator'] as const

export const BackupSummary = z.object({
  id: z.string(),
  type: z.enum(['physical', 'logical']),
  label: z.string(),
  databases: z.array(z.string()),
  startTime: z.string(),
  stopTime: z.string(),
  startLsn: z.string(),
  stopLsn: z.string(),
  timeline: z.number(),
  pgVersion: z.string(),
  compression: z.string(),
  encrypted: z.boolean(),
  keyId: z.string().nullable(),
  sizeBytes: z.number(),
  sourceBytes: z.number(),
  files: z.number(),
})
export type BackupSummary = z.infer<typeof BackupSummary>

export const backupCreate = defineRoute({
  id: 'backup.create',
  method: 'POST',
  path: '/v1/backups/create',
  roles: BACKUP_ROLES,
  mutating: true,
  streaming: true,
  input: z.object({
    type: z.enum(['physical', 'logical']).default('physical'),
    db: z.string().min(1).max(63).optional(),
    encrypt: z.boolean().default(false),
    label: z.string().max(100).optional(),
  }),
  /** repositories: where the backup is stored ("local" first, then every object store). */
  /** source: the instance the backup was read from (a replica with backup.source=prefer-standby). */
  output: BackupSummary.extend({ seconds: z.number(), repositories: z.array(z.string()), source: z.string() }),
})

export const backupList = defineRoute({
  id: 'backup.list',
  method: 'GET',
  path: '/v1/backups',
  roles: ALL_ROLES,
  mutating: false,
  input: z.object({ repo: Repo }),
  output: z.object({
    repository: z.string(),
    backups: z.array(BackupSummary),
    incomplete: z.array(z.object({ id: z.string(), state: z.enum(['running', 'interrupted', 'failed']), reason: z.string() })),
  }),
})

export const VerifyOutput = z.object({
  id: z.string(),
  ok: z.boolean(),
  filesChecked: z.number(),
  bytesChecked: z.number(),
  deep: z.boolean(),
  problems: z.array(z.object({ file: z.string(), reason: z.string() })),
})

export const backupVerify = defineRoute({
  id: 'backup.verify',
  method: 'POST',
  path: '/v1/backups/verify',
  roles: ['admin', 'operator', 'ci', 'viewer'],
  mutating: false,
  streaming: true,
  input: z.object({ id: BACKUP_ID, deep: z.boolean().default(true), repo: Repo }),
  output: VerifyOutput,
})

export const backupRestore = defineRoute({
  id: 'backup.restore',
  method: 'POST',
  path: '/v1/backups/restore',
  roles: OPS,
  mutating: true,
  streaming: true,
  input: z.object({
    id: BACKUP_ID,
    toInstance: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/).optional(),
    toDb: z.string().min(1).max(63).optional(),
    /** Physical backup + toDb: the database to take from the backup (default: toDb). */
    db: z.string().min(1).max(63).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    targetTime: z.string().optional(),
    targetLsn: z.string().optional(),
    force: z.boolean().default(false),
    /** Restore from this repository (the DR path: read back and re-hashed into a staging dir). */
    repo: Repo,
  }),
  output: z.object({
    id: z.string(),
    kind: z.enum(['instance', 'database']),
    target: z.string(),
    port: z.number().nullable(),
    dataDir: z.string().nullable(),
    pitr: z.boolean(),
    seconds: z.number(),
    /** 'primary' (in place), 'standalone' (a supervised copy), null for a database. */
    role: z.enum(['primary', 'standalone']).nullable(),
    /** In-place restore: the replaced data dir, kept aside (never deleted). */
    previousDataDir: z.string().nullable(),
    /** Database restores: the database restored from. */
    sourceDb: z.string().nullable(),
  }),
})

export const backupPrune = defineRoute({
  id: 'backup.prune',
  method: 'POST',
  path: '/v1/backups/prune',
  roles: OPS,
  mutating: true,
  input: z.object({
    keepLast: z.number().int().min(0).optional(),
    keepDaily: z.number().int().min(0).optional(),
    keepWeekly: z.number().int().min(0).optional(),
    dryRun: z.boolean().default(false),
    repo: Repo,
  }),
  output: z.object({
    repository: z.string(),
    dryRun: z.boolean(),
    kept: z.array(z.object({ id: z.string(), reasons: z.array(z.string()) })),
    removed: z.array(z.string()),
    walRemoved: z.array(z.string()),
    leftoversRemoved: z.array(z.string()),
  }),
})

export const backupRekey = defineRoute({
  id: 'backup.rekey',
  method: 'POST',
  path: '/v1/backups/rekey',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({
    /** Vault secret holding the OLD key-encryption key. */
    fromSecret: z.string().min(1),
    /** Vault secret holding the NEW one (default: backup.encryptionKey or backup.kek). */
    toSecret: z.string().min(1).optional(),
  }),
  output: z.object({
    newKeyId: z.string(),
    rewrapped: z.array(z.string()),
    skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
    /** The same for every object-store repository, plus its WAL objects. */
    repositories: z.array(
      z.object({
        repository: z.string(),
        rewrapped: z.array(z.string()),
        skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
        walRewrapped: z.number(),
        walUnchanged: z.number(),
        walSkipped: z.array(z.object({ name: z.string(), reason: z.string() })),
      }),
    ),
  }),
})
