import { promises as fsp } from 'node:fs'
import { writeFileAtomic } from '../platform/fs.js'

/**
 * writeFileAtomic, skipped when `file` is already a regular file holding exactly `text` with
 * this mode and owner (the caller's uid and gid unless given): every boot writes
 * topology.json, the libpq service file and the passfile, which a warm boot finds unchanged,
 * and each write costs an fsync of the file and one of its directory. True when it wrote.
 */
export async function writeFileAtomicIfChanged(file: string, text: string, opts: { mode: number; uid?: number; gid?: number }): Promise<boolean> {
  const st = await fsp.lstat(file).catch(() => undefined)
  const uid = opts.uid ?? process.getuid?.()
  const gid = opts.gid ?? process.getgid?.()
  if (st?.isFile() && (st.mode & 0o7777) === opts.mode && (uid === undefined || st.uid === uid) && (gid === undefined || st.gid === gid)) {
    if ((await fsp.readFile(file, 'utf8').catch(() => undefined)) === text) return false
  }
  await writeFileAtomic(file, text, opts)
  return true
}
