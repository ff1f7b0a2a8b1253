import { existsSync, promises as fsp } from 'node:fs'
import path from 'node:path'
import { lookupUser, type OsUser } from '../platform/os-user.js'
import { isProcessAliveSync } from '../platform/pids.js'
import { run } from '../platform/process.js'
import { EXT_ISOLATION_UNAVAILABLE } from './errors.js'
import type { ExtLayout } from './registry.js'

/**
 * The OS-level walls around an extension (docs/extensions.md, "Isolation"):
 *  - its own system user `mfext-<name>` (useradd --system, no home, no shell), removed with it;
 *  - its files: package/ read-only for it (root:its group, 0750/0640), state/ its own 0700,
 *    the extension's directory 0711 root (traversable, not listable), everything else of the
 *    state directory out of reach (0600/0700 root: tokens, vault, master.key, audit);
 *  - a memory limit: a cgroup (v2 when /sys/fs/cgroup is the unified hierarchy and writable,
 *    else the v1 memory controller) the process enters before it drops root; without a
 *    writable cgroup, Node's --max-old-space-size (through NODE_OPTIONS) is the only limit.
 */
export const osUserName = (name: string) => `mfext-${name}`

export function requireRoot(): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw EXT_ISOLATION_UNAVAILABLE({ reason: 'the kernel does not run as root, so it cannot run an extension under its own OS user' })
  }
}

export async function ensureOsUser(name: string, log?: (m: string, f: Record<string, unknown>) => void): Promise<OsUser> {
  const user = osUserName(name)
  try {
    return lookupUser(user)
  } catch {
    // absent: create it
  }
  await run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', user], { timeoutMs: 30_000, log })
  return lookupUser(user)
}

export async function removeOsUser(name: string, log?: (m: string, f: Record<string, unknown>) => void): Promise<void> {
  const user = osUserName(name)
  try {
    lookupUser(user)
  } catch {
    return
  }
  await run('userdel', [user], { timeoutMs: 30_000, log, reject: false })
  await run('groupdel', [user], { timeoutMs: 30_000, log, reject: false })
}

/** Copies the package in (refusing symlinks that leave it) and sets every owner and mode. */
export async function installFiles(layout: ExtLayout, name: string, from: string, user: OsUser): Promise<void> {
  await fsp.mkdir(layout.root, { recursive: true, mode: 0o711 })
  await fsp.chmod(layout.root, 0o711)
  const dir = layout.dir(name)
  await fsp.mkdir(dir, { recursive: true, mode: 0o711 })
  await fsp.chmod(dir, 0o711)
  const pkg = layout.packageDir(name)
  await fsp.rm(pkg, { recursive: true, force: true })
  // dereference: false keeps symlinks as links; the walk below refuses any that point outside.
  await fsp.cp(from, pkg, { recursive: true, dereference: false, verbatimSymlinks: true, filter: (src) => !/(^|\/)\.git$/.test(src) })
  await secureTree(pkg, pkg, user.gid)
  const state = layout.stateDir(name)
  await fsp.mkdir(state, { recursive: true, mode: 0o700 })
  await fsp.chown(state, user.uid, user.gid)
  await fsp.chmod(state, 0o700)
}

async function secureTree(root: string, p: string, gid: number): Promise<void> {
  const st = await fsp.lstat(p)
  if (st.isSymbolicLink()) {
    const target = path.resolve(path.dirname(p), await fsp.readlink(p))
    if (target !== root && !target.startsWith(root + path.sep)) {
      await fsp.rm(p)
      return
    }
    return
  }
  await fsp.chown(p, 0, gid)
  if (st.isDirectory()) {
    await fsp.chmod(p, 0o750)
    for (const e of await fsp.readdir(p)) await secureTree(root, path.join(p, e), gid)
  } else {
    await fsp.chmod(p, st.mode & 0o111 ? 0o750 : 0o640)
  }
}

export interface MemoryLimit {
  /** How the limit is enforced: 'cgroup2', 'cgroup1' or 'node-heap' (no writable cgroup). */
  kind: 'cgroup2' | 'cgroup1' | 'node-heap'
  /** The cgroup.procs file the child writes its own pid to before it drops root. */
  procsFile?: string
  remove(): Promise<void>
}

const CG2 = '/sys/fs/cgroup'
const CG1 = '/sys/fs/cgroup/memory'

/** A memory cgroup for one run of an extension, or the Node heap fallback. */
export async function memoryLimit(name: string, mb: number): Promise<MemoryLimit> {
  const bytes = String(mb * 1024 * 1024)
  const tryDir = async (base: string, file: string, kind: 'cgroup2' | 'cgroup1'): Promise<MemoryLimit | undefined> => {
    const dir = path.join(base, `magflock-ext-${name}-${process.pid}`)
    try {
      await fsp.mkdir(dir, { recursive: true })
      await fsp.writeFile(path.join(dir, file), bytes)
      if (kind === 'cgroup2') await fsp.writeFile(path.join(dir, 'memory.swap.max'), '0').catch(() => undefined)
      return { kind, procsFile: path.join(dir, 'cgroup.procs'), remove: () => removeCgroup(dir) }
    } catch {
      await fsp.rmdir(dir).catch(() => undefined)
      return undefined
    }
  }
  if (existsSync(path.join(CG2, 'cgroup.controllers'))) {
    const r = await tryDir(CG2, 'memory.max', 'cgroup2')
    if (r) return r
  }
  if (existsSync(path.join(CG1, 'memory.limit_in_bytes'))) {
    const r = await tryDir(CG1, 'memory.limit_in_bytes', 'cgroup1')
    if (r) return r
  }
  return { kind: 'node-heap', remove: async () => {} }
}

/**
 * Removes the cgroups a killed kernel left (`magflock-ext-<name>-<pid>` of a pid that is gone;
 * its extensions died with it by their parent-death signal, so the groups are empty).
 */
export async function sweepCgroups(): Promise<string[]> {
  const removed: string[] = []
  for (const base of [CG2, CG1]) {
    let names: string[]
    try {
      names = await fsp.readdir(base)
    } catch {
      continue
    }
    for (const n of names) {
      const m = /^magflock-ext-[a-z0-9-]+-(\d+)$/.exec(n)
      if (!m || Number(m[1]) === process.pid || isProcessAliveSync(Number(m[1]))) continue
      await fsp.rmdir(path.join(base, n)).then(() => removed.push(n), () => undefined)
    }
  }
  return removed
}

async function removeCgroup(dir: string): Promise<void> {
  // A cgroup can be removed once its last process has gone (the kernel reaps it asynchronously).
  for (let i = 0; i < 20; i++) {
    try {
      await fsp.rmdir(dir)
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
