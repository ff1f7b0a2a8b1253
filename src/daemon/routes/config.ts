import { configReload } from '../../api/config.js'
import { secretsRotate } from '../../api/secrets.js'
import { rotateSecretInKernel } from '../../databases/rotate-secret.js'
import { handle, type DaemonRoute } from '../services.js'

export const configRoutes: DaemonRoute[] = [
  handle(configReload, async (_in, ctx, k) => {
    const r = await k.kernel.reload()
    ctx.auditDetails.applied = r.applied
    ctx.auditDetails.restartRequired = r.restartRequired
    return r
  }),

  // ALTER ROLE and the vault update as one operation (src/databases/rotate-secret.ts); the new
  // value never leaves the kernel.
  handle(secretsRotate, async (input, ctx, k) => {
    const r = await rotateSecretInKernel(k, input.name)
    ctx.auditDetails.secret = input.name
    if (r.role) ctx.auditDetails.role = r.role
    return r
  }),
]
