import type { KernelServices } from '../../kernel/services.js'
import { LOCAL_REPOSITORY, secretName, type S3RepositoryConfig } from '../../config/repository.js'
import { BACKUP_REPO_CREDENTIALS_MISSING, BACKUP_REPO_UNKNOWN } from './errors.js'
import type { S3Repository } from './s3.js'

/** Repositories from config + vault: credentials are read from the vault here and nowhere else. */
export type RepoDeps = Pick<KernelServices, 'config' | 'secrets'>

export function remoteConfigs(k: Pick<KernelServices, 'config'>): S3RepositoryConfig[] {
  return k.config().backup.repositories
}

export async function openRepository(cfg: S3RepositoryConfig, get: (name: string) => Promise<string | undefined>): Promise<S3Repository> {
  const id = await get(secretName(cfg.accessKeyId))
  if (!id) throw BACKUP_REPO_CREDENTIALS_MISSING({ repo: cfg.name, secret: secretName(cfg.accessKeyId) })
  const key = await get(secretName(cfg.secretAccessKey))
  if (!key) throw BACKUP_REPO_CREDENTIALS_MISSING({ repo: cfg.name, secret: secretName(cfg.secretAccessKey) })
  // Loaded on first use: the AWS SDK is the largest part of the kernel bundle, and a kernel
  // boot (Postgres start) must not wait for it when no object store is configured.
  const { S3Repository } = await import('./s3.js')
  return new S3Repository(cfg, { accessKeyId: id, secretAccessKey: key })
}

/** `--repo NAME`: undefined or "local" = the state directory; otherwise the configured object store. */
export async function resolveRepository(k: RepoDeps, name: string | undefined): Promise<S3Repository | undefined> {
  if (name === undefined || name === LOCAL_REPOSITORY) return undefined
  const cfg = remoteConfigs(k).find((r) => r.name === name)
  if (!cfg) throw BACKUP_REPO_UNKNOWN({ name, known: [LOCAL_REPOSITORY, ...remoteConfigs(k).map((r) => r.name)] })
  return openRepository(cfg, (n) => k.secrets.get(n))
}

export async function openRemotes(k: RepoDeps): Promise<S3Repository[]> {
  const out: S3Repository[] = []
  for (const cfg of remoteConfigs(k)) out.push(await openRepository(cfg, (n) => k.secrets.get(n)))
  return out
}
