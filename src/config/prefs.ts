import Conf from 'conf'

/**
 * Per-user CLI preferences (not project config): where state lives by default and which
 * env to use when neither --env nor MAGFLOCK_ENV is given. Stored by `conf` in the user's
 * config dir (~/.config/magflock-nodejs/config.json), or under MAGFLOCK_PREFS_DIR.
 */
export interface UserPrefs {
  defaultStateDir?: string
  defaultEnv?: string
}

export const PREF_KEYS = ['defaultStateDir', 'defaultEnv'] as const
export type PrefKey = (typeof PREF_KEYS)[number]

export function userPrefs(environ: NodeJS.ProcessEnv = process.env): Conf<UserPrefs> {
  return new Conf<UserPrefs>({
    projectName: 'magflock',
    ...(environ.MAGFLOCK_PREFS_DIR ? { cwd: environ.MAGFLOCK_PREFS_DIR } : {}),
    schema: {
      defaultStateDir: { type: 'string', minLength: 1 },
      defaultEnv: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$' },
    },
  })
}
