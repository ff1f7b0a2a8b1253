import type * as Crypto from 'node:crypto'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { readUserPrefs } from '../config/prefs-read.js'
import { INVALID_REQUEST } from '../errors/index.js'

/**
 * Every instance name MagFlock accepts (API inputs use a subset of it): lowercase letter,
 * then letters, digits, - and _, up to 40 characters. Names read back from state files are
 * checked against it too (E_CORRUPT_STATE naming the file), and no path is ever built from a
 * name that fails it, so `../../etc` in a hand-edited topology.json cannot leave the state dir.
 */
export const INSTANCE_NAME_RE = /^[a-z][a-z0-9_-]{0,39}$/
export const INSTANCE_NAME_RULE = 'lowercase letters, digits, - and _, starting with a letter, up to 40 characters'

export function isInstanceName(name: string): boolean {
  return INSTANCE_NAME_RE.test(name)
}

function instancePath(instancesDir: string, name: string, ...rest: string[]): string {
  if (!isInstanceName(name)) throw INVALID_REQUEST({ message: `instance name "${name.slice(0, 80)}" is not valid (${INSTANCE_NAME_RULE}); no path is built from it` })
  return path.join(instancesDir, name, ...rest)
}

/** Linux caps sun_path at 108 bytes including the NUL. */
export const MAX_SOCKET_PATH = 107

/** Where one flock keeps everything (see docs/architecture.md, "State directory"). */
export interface StateLayout {
  root: string
  kernelJson: string
  kernelLog: string
  socket: string
  adminToken: string
  tokens: string
  instancesDir: string
  instanceDir(name: string): string
  dataDir(name: string): string
  instanceLog(name: string): string
  walDir: string
  backupsDir: string
  auditDir: string
  auditLog: string
  auditHead: string
  secretsVault: string
  masterKey: string
  lockFile: string
  /** libpq password file for the superuser (src/postgres/pgpass.ts). */
  pgpass: string
  /** libpq service file with the `magflock` service (src/postgres/pgpass.ts). */
  pgService: string
}

/** --state-dir → MAGFLOCK_STATE_DIR → the user's `defaultStateDir` preference → ./.magflock */
export function resolveStateDir(flag?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const dir = flag ?? env.MAGFLOCK_STATE_DIR ?? readUserPrefs(env).defaultStateDir ?? '.magflock'
  return path.resolve(cwd, dir)
}

/**
 * The control socket lives in the state dir when its path fits; otherwise a short,
 * deterministic path under $XDG_RUNTIME_DIR or /tmp derived from the state dir, so the
 * CLI finds it again without reading kernel.json first.
 */
export function socketPathFor(root: string, env: NodeJS.ProcessEnv = process.env): string {
  const preferred = path.join(root, 'magflock.sock')
  if (Buffer.byteLength(preferred) <= MAX_SOCKET_PATH) return preferred
  // node:crypto on demand: loading it costs every CLI call ~3 ms, and only long paths need it.
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof Crypto
  const hash = createHash('sha256').update(root).digest('hex').slice(0, 16)
  const base = env.XDG_RUNTIME_DIR && Buffer.byteLength(env.XDG_RUNTIME_DIR) < 60 ? env.XDG_RUNTIME_DIR : os.tmpdir()
  return path.join(base, `magflock-${hash}.sock`)
}

export function stateLayout(root: string): StateLayout {
  const instancesDir = path.join(root, 'instances')
  const auditDir = path.join(root, 'audit')
  return {
    root,
    kernelJson: path.join(root, 'kernel.json'),
    kernelLog: path.join(root, 'kernel.log'),
    socket: socketPathFor(root),
    adminToken: path.join(root, 'admin.token'),
    tokens: path.join(root, 'tokens.json'),
    instancesDir,
    instanceDir: (name) => instancePath(instancesDir, name),
    dataDir: (name) => instancePath(instancesDir, name, 'data'),
    instanceLog: (name) => instancePath(instancesDir, name, 'postgres.log'),
    walDir: path.join(root, 'wal'),
    backupsDir: path.join(root, 'backups'),
    auditDir,
    auditLog: path.join(auditDir, 'audit.jsonl'),
    auditHead: path.join(auditDir, 'head.json'),
    secretsVault: path.join(root, 'secrets.vault'),
    masterKey: path.join(root, 'master.key'),
    lockFile: path.join(root, 'kernel.lock'),
    pgpass: path.join(root, 'pgpass'),
    pgService: path.join(root, 'pg_service.conf'),
  }
}
