import { randomBytes } from 'node:crypto'
import { promises as fsp, constants } from 'node:fs'
import path from 'node:path'
import { CORRUPT_STATE, isMagflockError } from '../errors/index.js'

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content,
 * never a mix: temp file in the same directory, fsync, rename, fsync the directory.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  opts: { mode?: number; uid?: number; gid?: number } = {},
): Promise<void> {
  const dir = path.dirname(file)
  await fsp.mkdir(dir, { recursive: true })
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await fsp.open(tmp, 'wx', opts.mode ?? 0o644)
  try {
    await fh.writeFile(data)
    if (opts.mode !== undefined) await fh.chmod(opts.mode)
    if (opts.uid !== undefined && opts.gid !== undefined) await fh.chown(opts.uid, opts.gid)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await fsp.rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  await fsp.rename(tmp, file)
  await fsyncDir(dir)
}

export async function fsyncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, constants.O_RDONLY)
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p)
    return true
  } catch {
    return false
  }
}

/** Reads a JSON state file; a missing file is `undefined`, a corrupt one is E_CORRUPT_STATE. */
export async function readJsonFile<T>(file: string, parse: (v: unknown) => T): Promise<T | undefined> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw CORRUPT_STATE({ file, reason: 'not valid JSON' }, { cause: err })
  }
  try {
    return parse(raw)
  } catch (err) {
    // A parser that found something specific (an invalid instance name…) says so itself.
    if (isMagflockError(err)) throw err
    throw CORRUPT_STATE({ file, reason: 'unexpected content' }, { cause: err })
  }
}

/**
 * writeFileAtomic, skipped when `file` is already a regular file holding exactly `text` with
 * this mode and owner (the caller's uid and gid unless given): state the kernel writes on every
 * boot (topology.json, the libpq service file and passfile) is usually unchanged on a warm
 * boot, and each write costs an fsync of the file and one of its directory. True when it wrote.
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

const jsonText = (value: unknown): string => JSON.stringify(value, null, 2) + '\n'

export async function writeJsonAtomic(file: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(file, jsonText(value), { mode })
}

/** writeJsonAtomic through writeFileAtomicIfChanged. */
export async function writeJsonAtomicIfChanged(file: string, value: unknown, mode = 0o600): Promise<boolean> {
  return writeFileAtomicIfChanged(file, jsonText(value), { mode })
}
