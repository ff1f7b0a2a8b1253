import { defineError } from '../../errors/index.js'

/** Errors of backup repositories (area "backup"). Messages name the repository and object, never a credential. */

export const BACKUP_REPO_UNKNOWN = defineError<{ name: string; known: string[] }>({
  code: 'E_BACKUP_REPO_UNKNOWN',
  class: 'not_found',
  area: 'backup',
  message: (a) => `No backup repository named "${a.name}".`,
  hint: (a) => `Known repositories: ${a.known.join(', ')}. Add one under backup.repositories in magflock.yaml (docs/backup.md).`,
})

export const BACKUP_REPO_AUTH = defineError<{ repo: string; reason: string; secrets: string[] }>({
  code: 'E_BACKUP_REPO_AUTH',
  class: 'permission_denied',
  area: 'backup',
  message: (a) => `Repository "${a.repo}" refused the credentials: ${a.reason}.`,
  hint: (a) => `Check the vault secrets ${a.secrets.join(' and ')} (\`magflock secrets set NAME\`) and that the key may read and write the bucket.`,
})

export const BACKUP_REPO_CREDENTIALS_MISSING = defineError<{ repo: string; secret: string }>({
  code: 'E_BACKUP_REPO_CREDENTIALS_MISSING',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `Repository "${a.repo}" needs the vault secret "${a.secret}", which is not set.`,
  hint: (a) => `Store it with \`magflock secrets set ${a.secret}\` (the value is read from stdin, never from argv).`,
})

export const BACKUP_REPO_IO = defineError<{ repo: string; op: string; object: string; reason: string; attempts: number }>({
  code: 'E_BACKUP_REPO_IO',
  class: 'unavailable',
  area: 'backup',
  message: (a) => `Repository "${a.repo}": ${a.op} of ${a.object} failed after ${a.attempts} attempt(s): ${a.reason}.`,
  hint: () => 'The object store did not accept the request (retried with backoff). Nothing incomplete is listed; check the endpoint and try again.',
})

export const BACKUP_REPO_NO_BUCKET = defineError<{ repo: string; bucket: string }>({
  code: 'E_BACKUP_REPO_NO_BUCKET',
  class: 'failed_precondition',
  area: 'backup',
  message: (a) => `Repository "${a.repo}": bucket "${a.bucket}" does not exist.`,
  hint: () => 'Create the bucket (MagFlock never creates buckets) or fix backup.repositories[].bucket.',
})

export const BACKUP_REPO_PUSH_FAILED = defineError<{ id: string; failures: string }>({
  code: 'E_BACKUP_REPO_PUSH_FAILED',
  class: 'unavailable',
  area: 'backup',
  message: (a) => `Backup ${a.id} is complete locally but could not be stored in every repository: ${a.failures}.`,
  hint: () => 'The partial upload was removed and is not listed there. Fix the repository and take a new backup (or run `magflock backup create` again).',
})
