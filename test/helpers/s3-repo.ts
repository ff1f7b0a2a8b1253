import { randomBytes } from 'node:crypto'
import nock from 'nock'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { S3Repository } from '../../src/backup/repository/s3.js'
import { S3RepositoryConfig } from '../../src/config/repository.js'
import { startS3, S3_ACCESS_KEY, S3_SECRET_KEY, type S3Server } from './s3.js'

/**
 * For the repository-layer tests that put nock in front of a real s3rver: one server per
 * file (started before, stopped after), nock's interceptors cleared after each test and nock
 * restored at the end, the file's temp dir removed. Returns the running server.
 */
export function useS3Server(buckets: string[], tmp: { cleanup(): void }): () => S3Server {
  let s3: S3Server | undefined
  beforeAll(async () => {
    s3 = await startS3(buckets)
  })
  afterAll(async () => {
    nock.restore()
    await s3?.stop()
    tmp.cleanup()
  })
  afterEach(() => {
    nock.cleanAll()
  })
  return () => {
    if (!s3) throw new Error('the S3 server is not started yet')
    return s3
  }
}

/** A repository named `offsite` on the test server, under a fresh prefix, with the server's credentials. */
export function testRepository(
  endpoint: string,
  bucket: string,
  over: Partial<Record<string, unknown>> = {},
  creds = { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
): S3Repository {
  const cfg = S3RepositoryConfig.parse({
    name: 'offsite',
    type: 's3',
    endpoint,
    bucket,
    prefix: `t-${randomBytes(3).toString('hex')}`,
    accessKeyId: 'secret:s3.id',
    secretAccessKey: 'secret:s3.key',
    connectTimeoutSeconds: 1,
    ...over,
  })
  return new S3Repository(cfg, creds)
}
