import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'
import { isMagflockError } from '../../errors/index.js'
import { type S3RepositoryConfig, secretName } from '../../config/repository.js'
import { BACKUP_REPO_AUTH, BACKUP_REPO_IO, BACKUP_REPO_NO_BUCKET } from './errors.js'

/**
 * One S3-compatible repository: the AWS SDK v3 client (custom endpoint, path-style), multipart
 * uploads through @aws-sdk/lib-storage, and every failure turned into a MagflockError naming
 * the repository and the object. Retries are the SDK's standard strategy: `maxAttempts` per
 * request with exponential backoff and jitter, for throttling (503 SlowDown), 5xx, connection
 * resets and timeouts (`requestTimeoutSeconds` without a response). A multipart upload that
 * fails for good is aborted (lib-storage's leavePartsOnError=false), so no parts stay billed.
 * Objects carry an x-amz-checksum-crc32 the server checks on receipt, and the sha256 of the
 * whole file as metadata; every download is re-hashed against the backup manifest.
 */
export interface RepoCredentials {
  accessKeyId: string
  secretAccessKey: string
}

export interface RemoteObject {
  /** Key relative to the repository prefix. */
  key: string
  size: number
  lastModified: Date | undefined
}

const AUTH_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'InvalidClientTokenId', 'Forbidden'])

interface SdkError {
  name?: string
  message?: string
  Code?: string
  $metadata?: { httpStatusCode?: number; attempts?: number }
}

export class S3Repository {
  readonly name: string
  readonly client: S3Client
  private readonly prefix: string

  constructor(
    readonly cfg: S3RepositoryConfig,
    creds: RepoCredentials,
  ) {
    this.name = cfg.name
    this.prefix = cfg.prefix ? `${cfg.prefix}/` : ''
    this.client = new S3Client({
      region: cfg.region,
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      forcePathStyle: cfg.forcePathStyle,
      credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
      maxAttempts: cfg.maxAttempts,
      retryMode: 'standard',
      requestHandler: { connectionTimeout: cfg.connectTimeoutSeconds * 1000, requestTimeout: cfg.requestTimeoutSeconds * 1000 },
      // No "Expect: 100-continue" on large parts: several self-hosted S3 servers and proxies
      // handle it badly, and our bodies are bounded by the part size anyway.
      expectContinueHeader: false,
    })
  }

  /** Full key of `rel` (relative to the repository prefix). */
  key(rel: string): string {
    return this.prefix + rel
  }

  /** Where the repository is, for messages (never a credential). */
  describe(): string {
    return `${this.cfg.endpoint ?? 's3'}/${this.cfg.bucket}/${this.cfg.prefix}`
  }

  /** Converts an SDK failure into E_BACKUP_REPO_AUTH / _NO_BUCKET / _IO naming the object. */
  fail(op: string, rel: string, err: unknown): Error {
    if (isMagflockError(err)) return err
    const e = (err ?? {}) as SdkError
    const name = e.name ?? e.Code ?? 'Error'
    const status = e.$metadata?.httpStatusCode
    const reason = `${name}${status ? ` (HTTP ${status})` : ''}: ${(e.message ?? String(err)).slice(0, 300)}`
    if (AUTH_ERRORS.has(name) || status === 403) {
      return BACKUP_REPO_AUTH({ repo: this.name, reason, secrets: [secretName(this.cfg.accessKeyId), secretName(this.cfg.secretAccessKey)] }, { cause: err })
    }
    if (name === 'NoSuchBucket') return BACKUP_REPO_NO_BUCKET({ repo: this.name, bucket: this.cfg.bucket }, { cause: err })
    return BACKUP_REPO_IO({ repo: this.name, op, object: this.key(rel), reason, attempts: e.$metadata?.attempts ?? this.cfg.maxAttempts }, { cause: err })
  }

  /** Checks bucket and credentials with one request. */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.cfg.bucket }))
    } catch (err) {
      const e = err as SdkError
      if (e.$metadata?.httpStatusCode === 404) throw BACKUP_REPO_NO_BUCKET({ repo: this.name, bucket: this.cfg.bucket })
      throw this.fail('HeadBucket', '', err)
    }
  }

  /** Uploads a file (multipart above one part size); aborted on `signal`. */
  async putFile(rel: string, file: string, meta: Record<string, string> = {}, signal?: AbortSignal, onUploadId?: (key: string, uploadId: string) => void): Promise<void> {
    await this.upload(rel, createReadStream(file, { highWaterMark: 1 << 20 }), meta, signal, onUploadId)
  }

  /**
   * Uploads a stream of unknown length: lib-storage cuts it into parts of `partSizeMiB` and
   * keeps four in flight, so memory stays bounded (about five parts) however long the stream
   * is. `onUploadId` learns the multipart upload's id once the server gave it (the writer's
   * journal keeps it, so a kernel killed mid-upload can abort it at the next start).
   */
  async upload(rel: string, body: Readable, meta: Record<string, string> = {}, signal?: AbortSignal, onUploadId?: (key: string, uploadId: string) => void): Promise<void> {
    const up = new Upload({
      client: this.client,
      params: { Bucket: this.cfg.bucket, Key: this.key(rel), Body: body, Metadata: meta, ChecksumAlgorithm: 'CRC32' },
      partSize: this.cfg.partSizeMiB * 1024 * 1024,
      queueSize: 4,
      // We abort ourselves (below), so a server that cannot abort never hides the real error.
      leavePartsOnError: true,
    })
    // lib-storage reports the id only with the first finished part: look for it sooner too.
    let told = false
    const tell = () => {
      if (!told && onUploadId && up.uploadId) {
        told = true
        onUploadId(rel, up.uploadId)
      }
    }
    up.on('httpUploadProgress', tell)
    const looking = onUploadId ? setInterval(tell, 100) : undefined
    const onAbort = () => void up.abort().catch(() => undefined)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await up.done()
    } catch (err) {
      if (up.uploadId) await this.abortUpload(rel, up.uploadId).catch(() => undefined)
      throw this.fail('upload', rel, err)
    } finally {
      clearInterval(looking)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Aborts one multipart upload; one the server no longer knows (or cannot abort) is not an error. */
  async abortUpload(rel: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: this.key(rel), UploadId: uploadId }))
    } catch (err) {
      const e = err as SdkError
      const status = e.$metadata?.httpStatusCode
      if (e.name === 'NoSuchUpload' || status === 404 || status === 405 || status === 501) return
      throw this.fail('AbortMultipartUpload', rel, err)
    }
  }

  async putBuffer(rel: string, body: Buffer, meta: Record<string, string> = {}): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(rel), Body: body, Metadata: meta, ChecksumAlgorithm: 'CRC32' }))
    } catch (err) {
      throw this.fail('PutObject', rel, err)
    }
  }

  /** Size and metadata, or undefined when the object does not exist. */
  async head(rel: string): Promise<{ size: number; meta: Record<string, string> } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(rel) }))
      return { size: r.ContentLength ?? 0, meta: r.Metadata ?? {} }
    } catch (err) {
      const e = err as SdkError
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined
      throw this.fail('HeadObject', rel, err)
    }
  }

  /** The object's bytes (or bytes start..end inclusive) as a stream, or undefined when it does not exist. */
  async get(rel: string, range?: { start: number; end: number }, signal?: AbortSignal): Promise<Readable | undefined> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(rel), ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
        signal ? { abortSignal: signal } : {},
      )
      return r.Body as Readable
    } catch (err) {
      const e = err as SdkError
      if (e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined
      throw this.fail('GetObject', rel, err)
    }
  }

  async getBuffer(rel: string): Promise<Buffer | undefined> {
    const s = await this.get(rel)
    if (!s) return undefined
    const parts: Buffer[] = []
    try {
      for await (const c of s) parts.push(c as Buffer)
    } catch (err) {
      throw this.fail('GetObject', rel, err)
    }
    return Buffer.concat(parts)
  }

  /** Every object under `relPrefix` (all pages). */
  async list(relPrefix: string): Promise<RemoteObject[]> {
    const out: RemoteObject[] = []
    let token: string | undefined
    try {
      do {
        const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: this.key(relPrefix), ContinuationToken: token }))
        for (const o of r.Contents ?? []) {
          if (o.Key) out.push({ key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, lastModified: o.LastModified })
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined
      } while (token)
    } catch (err) {
      throw this.fail('ListObjectsV2', relPrefix, err)
    }
    return out
  }

  async deleteMany(rels: string[]): Promise<void> {
    for (let i = 0; i < rels.length; i += 1000) {
      const batch = rels.slice(i, i + 1000)
      try {
        const r = await this.client.send(new DeleteObjectsCommand({ Bucket: this.cfg.bucket, Delete: { Objects: batch.map((k) => ({ Key: this.key(k) })), Quiet: true } }))
        const bad = r.Errors?.[0]
        if (bad) throw Object.assign(new Error(bad.Message ?? 'delete failed'), { name: bad.Code ?? 'DeleteError' })
      } catch (err) {
        throw this.fail('DeleteObjects', batch[0] ?? relPrefixOf(rels), err)
      }
    }
  }

  /** Aborts every unfinished multipart upload under `relPrefix` (a writer killed mid-upload). */
  async abortUploads(relPrefix: string, skip?: (rel: string) => boolean): Promise<string[]> {
    const aborted: string[] = []
    try {
      const r = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.cfg.bucket, Prefix: this.key(relPrefix) }))
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId || skip?.(u.Key.slice(this.prefix.length))) continue
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: u.Key, UploadId: u.UploadId }))
        aborted.push(u.Key.slice(this.prefix.length))
      }
    } catch (err) {
      // Some S3-compatible servers cannot list uploads (501); ours abort on failure anyway.
      if ((err as SdkError).$metadata?.httpStatusCode === 501) return aborted
      throw this.fail('AbortMultipartUpload', relPrefix, err)
    }
    return aborted
  }

  destroy(): void {
    this.client.destroy()
  }
}

function relPrefixOf(rels: string[]): string {
  return rels[0] ?? ''
}
