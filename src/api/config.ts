import { z } from 'zod'
import { OPERATORS, defineRoute } from './route.js'

/**
 * `magflock config reload` (also SIGHUP): the kernel re-reads its layered config, applies the
 * keys that can change live and reports the ones that need a restart. An invalid new config
 * is refused (E_CONFIG_INVALID / E_CONFIG_SYNTAX) and the running one stays.
 */
export const ConfigReloadResult = z.object({
  env: z.string(),
  applied: z.array(z.string()),
  restartRequired: z.array(z.string()),
})
export type ConfigReloadResult = z.infer<typeof ConfigReloadResult>

export const configReload = defineRoute({
  id: 'config.reload',
  method: 'POST',
  path: '/v1/config/reload',
  roles: OPERATORS,
  mutating: true,
  input: z.object({}),
  output: ConfigReloadResult,
})
