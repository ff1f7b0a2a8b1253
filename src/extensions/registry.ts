import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'
import { MAX_SOCKET_PATH } from '../platform/paths.js'
import { EXT_NOT_FOUND } from './errors.js'
import { Manifest, checkExtName } from './manifest.js'

/**
 * Where extensions live in the state directory and what the kernel knows about them.
 *
 *   extensions/               0711 root: registry.json (0600)
 *   extensions/<name>/        0711 root: traversable, not listable, by the extension's user
 *     package/                the installed code, root:mfext-<name> 0750 (read-only for it)
 *     state/                  0700 mfext-<name>: its cwd and the only place it may write
 *     api.sock                0600 mfext-<name>: its own control socket (only its token works there)
 *     extension.log           0600 root: its stdout and stderr
 */
export interface ExtLayout {
  root: string
  registry: string
  dir(name: string): string
  packageDir(name: string): string
  stateDir(name: string): string
  log(name: string): string
  socket(name: string): string
}

export function extLayout(stateRoot: string): ExtLayout {
  const root = path.join(stateRoot, 'extensions')
  const dir = (name: string) => path.join(root, checkExtName(name))
  return {
    root,
    registry: path.join(root, 'registry.json'),
    dir,
    packageDir: (n) => path.join(dir(n), 'package'),
    stateDir: (n) => path.join(dir(n), 'state'),
    log: (n) => path.join(dir(n), 'extension.log'),
    socket: (n) => {
      const preferred = path.join(dir(n), 'api.sock')
      if (Buffer.byteLength(preferred) <= MAX_SOCKET_PATH) return preferred
      // Too long for sun_path: a short name in the temp dir (the socket is 0600, owned by the
      // extension's user; /tmp's sticky bit keeps other users from replacing it).
      const hash = createHash('sha256').update(preferred).digest('hex').slice(0, 12)
      return path.join(os.tmpdir(), `magflock-ext-${hash}.sock`)
    },
  }
}

export const ExtEntry = z.object({
  name: z.string(),
  version: z.string(),
  manifest: Manifest,
  /** What was installed from (a path or a package name), for the operator. */
  source: z.string(),
  installedAt: z.string(),
  enabled: z.boolean(),
  /** Capabilities the operator approved; a subset of manifest.capabilities. */
  grants: z.array(z.string()),
})
export type ExtEntry = z.infer<typeof ExtEntry>

const RegistryFile = z.object({ version: z.literal(1), extensions: z.array(ExtEntry) })
type RegistryFile = z.infer<typeof RegistryFile>

/**
 * registry.json, read once and kept in memory (the kernel is its only writer); every change
 * is written atomically before it takes effect, serialized through one queue.
 */
export class ExtRegistry {
  private data: RegistryFile | undefined
  private queue: Promise<unknown> = Promise.resolve()

  constructor(readonly file: string) {}

  async load(): Promise<ExtEntry[]> {
    this.data ??= (await readJsonFile(this.file, (v) => RegistryFile.parse(v))) ?? { version: 1, extensions: [] }
    return this.data.extensions
  }

  /** The loaded entries (load() first). */
  list(): ExtEntry[] {
    return this.data?.extensions ?? []
  }

  find(name: string): ExtEntry | undefined {
    return this.list().find((e) => e.name === name)
  }

  get(name: string): ExtEntry {
    const e = this.find(name)
    if (!e) throw EXT_NOT_FOUND({ name: name.slice(0, 80) })
    return e
  }

  /** Read-modify-write; `fn` may throw to change nothing. */
  mutate<T>(fn: (entries: ExtEntry[]) => T): Promise<T> {
    const run = async () => {
      const current = await this.load()
      const next = current.map((e) => ({ ...e, grants: [...e.grants] }))
      const result = fn(next)
      await writeJsonAtomic(this.file, { version: 1, extensions: next }, 0o600)
      this.data = { version: 1, extensions: next }
      return result
    }
    const p = this.queue.then(run, run)
    this.queue = p.catch(() => undefined)
    return p
  }
}
