import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/**
 * A temp dir the `postgres` OS user can traverse (tests run as root, Postgres as postgres).
 * Kept for inspection when MAGFLOCK_KEEP_TMP=1.
 */
export function tempDir(prefix = 'mf-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  chmodSync(dir, 0o755)
  return {
    dir,
    cleanup() {
      if (process.env.MAGFLOCK_KEEP_TMP === '1') return
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
