import { z } from 'zod'
import { ADMIN_ONLY, defineRoute } from './route.js'

/**
 * Rotation of a database role's password (superuser, postgres.roles.<role>.password,
 * db.<name>.owner.password): ALTER ROLE and the vault update as one operation, in the kernel.
 * Plain secrets are rotated by the CLI against the store directly. Never returns the value.
 */
export const SecretsRotateResult = z.object({
  name: z.string(),
  role: z.string().optional(),
  rotatedAt: z.string(),
})
export type SecretsRotateResult = z.infer<typeof SecretsRotateResult>

export const secretsRotate = defineRoute({
  id: 'secrets.rotate',
  method: 'POST',
  path: '/v1/secrets/rotate',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({ name: z.string().min(1).max(200) }),
  output: SecretsRotateResult,
})
