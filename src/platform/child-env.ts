/**
 * The allow-listed environment every child starts with (src/platform/process.ts spawns them;
 * the kernel's first stage, src/postgres/early-start.ts, uses it without loading execa).
 */

/** Variables a child may inherit from us; everything else is dropped. */
const ENV_ALLOW = /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR|PGTZ)$/

/**
 * The environment a child starts with: the allow-listed part of ours plus `extra`.
 * PGPASSWORD is never part of it (see withPassfile).
 */
export function childEnv(extra: Record<string, string | undefined> = {}, inherit = false, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined) continue
    if (inherit ? !/^MAGFLOCK_/.test(k) && k !== 'PGPASSWORD' : ENV_ALLOW.test(k)) env[k] = v
  }
  if (!env.PATH) env.PATH = '/usr/local/bin:/usr/bin:/bin'
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && k !== 'PGPASSWORD') env[k] = v
  return env
}
