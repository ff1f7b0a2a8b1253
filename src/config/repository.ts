import { z } from 'zod'

/**
 * Repository settings (`backup.repositories`, `backup.retention`). The local directory
 * (`<state>/backups` + `<state>/wal`) is always the repository named `local`; every entry of
 * `backup.repositories` is an S3-compatible object store each backup is also written to.
 * Credentials are vault references (`secret:NAME`) only: a literal key in a config file is
 * refused by this schema, and none is ever accepted on the command line.
 */
const secretRef = z
  .string()
  .regex(/^secret:[A-Za-z0-9._-]{1,128}$/, 'must be a vault reference "secret:NAME" (credentials never go into config files)')

export const RetentionPolicyConfig = z
  .object({
    keepLast: z.number().int().min(1).optional().describe('Keep the newest N backups of each series.'),
    keepDaily: z.number().int().min(1).optional().describe('Keep the newest backup of each of the last D days.'),
    keepWeekly: z.number().int().min(1).optional().describe('Keep the newest backup of each of the last W ISO weeks.'),
  })
  .strict()
export type RetentionPolicyConfig = z.infer<typeof RetentionPolicyConfig>

export const LOCAL_REPOSITORY = 'local'

export const S3RepositoryConfig = z
  .object({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,39}$/)
      .refine((n) => n !== LOCAL_REPOSITORY, '"local" is the name of the state directory repository')
      .describe('Name used with --repo.'),
    type: z.literal('s3'),
    endpoint: z.string().url().optional().describe('S3-compatible endpoint URL (omit for AWS).'),
    region: z.string().min(1).default('us-east-1'),
    bucket: z.string().min(3).max(63),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9._/-]*$/)
      .default('magflock')
      .transform((p) => p.replace(/^\/+|\/+$/g, ''))
      .describe('Key prefix inside the bucket.'),
    forcePathStyle: z.boolean().default(true).describe('Path-style addressing (most self-hosted S3 servers need it).'),
    accessKeyId: secretRef.describe('Vault reference of the access key id.'),
    secretAccessKey: secretRef.describe('Vault reference of the secret access key.'),
    partSizeMiB: z.number().int().min(5).max(512).default(16).describe('Multipart upload part size.'),
    maxAttempts: z.number().int().min(1).max(10).default(4).describe('Attempts per request (exponential backoff in between).'),
    requestTimeoutSeconds: z.number().min(0.1).max(3600).default(60).describe('A request without a response for this long is retried.'),
    connectTimeoutSeconds: z.number().min(0.1).max(600).default(10).describe('A connection not established within this long is retried.'),
    retention: RetentionPolicyConfig.optional().describe('Retention of this repository (default: backup.retention).'),
  })
  .strict()
export type S3RepositoryConfig = z.infer<typeof S3RepositoryConfig>

export const RepositoriesConfig = z
  .array(S3RepositoryConfig)
  .max(8)
  .default([])
  .refine((l) => new Set(l.map((r) => r.name)).size === l.length, 'repository names must be unique')

/** Vault secret name of a `secret:NAME` reference. */
export function secretName(ref: string): string {
  return ref.slice('secret:'.length)
}
