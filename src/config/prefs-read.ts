import { readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { UserPrefs } from './prefs.js'

/**
 * Reads the user preferences that `conf` writes (src/config/prefs.ts), without importing
 * `conf` (≈0.4 s on these machines): every command resolves its state dir at start-up, and
 * that must stay cheap. Same file as conf's: <MAGFLOCK_PREFS_DIR>/config.json, else
 * $XDG_CONFIG_HOME/magflock-nodejs/config.json (~/.config when unset). A missing or
 * unreadable file means no preferences; it never blocks a command.
 */
export function prefsFile(environ: NodeJS.ProcessEnv = process.env): string {
  if (environ.MAGFLOCK_PREFS_DIR) return path.join(environ.MAGFLOCK_PREFS_DIR, 'config.json')
  const base = environ.XDG_CONFIG_HOME || path.join(environ.HOME || os.homedir(), '.config')
  return path.join(base, 'magflock-nodejs', 'config.json')
}

export function readUserPrefs(environ: NodeJS.ProcessEnv = process.env): UserPrefs {
  try {
    const raw = JSON.parse(readFileSync(prefsFile(environ), 'utf8')) as Record<string, unknown>
    const out: UserPrefs = {}
    if (typeof raw.defaultStateDir === 'string' && raw.defaultStateDir) out.defaultStateDir = raw.defaultStateDir
    if (typeof raw.defaultEnv === 'string' && raw.defaultEnv) out.defaultEnv = raw.defaultEnv
    return out
  } catch {
    return {}
  }
}
