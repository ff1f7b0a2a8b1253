import { execFile, execFileSync } from 'node:child_process'
import { OS_USER_MISSING } from '../errors/index.js'
import { childEnv, type OsUser } from './process.js'

export type { OsUser } from './process.js'

/**
 * Postgres refuses to run as root. When the kernel is root, every Postgres tool runs as an
 * unprivileged OS user (`postgres` by default, `postgres.osUser` in config); otherwise as
 * ourselves. Returns undefined when no switch is needed.
 */
export function postgresRunAs(configured?: string): OsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  const name = configured ?? 'postgres'
  return lookupUser(name)
}

/** `getent passwd NAME` outputs run ahead by prefetchOsUser(), each used by one lookupUser(). */
const prefetched = new Map<string, Promise<string | undefined>>()
const settled = new Map<string, string>()

/**
 * Runs the account lookup of postgresRunAs(configured) in the background (the kernel boot
 * does other work meanwhile); await it, then postgresRunAs() uses its answer. Never rejects.
 */
export function prefetchOsUser(configured?: string): Promise<void> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return Promise.resolve()
  const name = configured ?? 'postgres'
  // Already answered by an earlier prefetch (the kernel entry's) and not used yet.
  if (settled.has(name)) return Promise.resolve()
  let p = prefetched.get(name)
  if (!p) {
    p = new Promise<string | undefined>((resolve) =>
      execFile('getent', ['passwd', name], { encoding: 'utf8', env: childEnv() }, (err, out) => resolve(err ? undefined : out.trim())),
    )
    prefetched.set(name, p)
  }
  return p.then((line) => {
    prefetched.delete(name)
    if (line !== undefined) settled.set(name, line)
  })
}

export function lookupUser(name: string): OsUser {
  let line: string
  const early = settled.get(name)
  settled.delete(name)
  try {
    line = early ?? execFileSync('getent', ['passwd', name], { encoding: 'utf8', env: childEnv() }).trim()
  } catch {
    throw OS_USER_MISSING({ user: name })
  }
  const [, , uid, gid, , home] = line.split(':')
  return { name, uid: Number(uid), gid: Number(gid), home: home ?? '/' }
}

/** The login name of a uid, or undefined when the passwd database has none. */
export function userNameOf(uid: number): string | undefined {
  try {
    return execFileSync('getent', ['passwd', String(uid)], { encoding: 'utf8' }).split(':')[0] || undefined
  } catch {
    return undefined
  }
}
