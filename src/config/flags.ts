import { Flags } from '@oclif/core'
import { resolveEnvName } from './load.js'
import { readUserPrefs } from './prefs-read.js'

/** `--env NAME`: which magflock.<env>.yaml overlay to apply. Reusable by any command. */
export const envFlag = Flags.string({
  summary: 'Config environment: applies magflock.<env>.yaml over magflock.yaml.',
  description: 'Defaults to MAGFLOCK_ENV, then the `defaultEnv` user preference, then "development".',
  helpValue: 'NAME',
})

/** --env flag → MAGFLOCK_ENV → user preference defaultEnv → development. */
export function effectiveEnv(flag: string | undefined, environ: NodeJS.ProcessEnv = process.env): string {
  if (flag) return resolveEnvName(flag, environ)
  if (environ.MAGFLOCK_ENV) return resolveEnvName(environ.MAGFLOCK_ENV, environ)
  return resolveEnvName(readUserPrefs(environ).defaultEnv, environ)
}
