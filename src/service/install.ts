import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { exists, writeFileAtomic } from '../platform/fs.js'
import { lookupUser, userNameOf } from '../platform/os-user.js'
import type { StateLayout } from '../platform/paths.js'
import { run } from '../platform/process.js'
import { SERVICE_UNIT_FOREIGN, SERVICE_WRITE_DENIED } from './errors.js'
import { MARKER, assertServiceName, renderEnvFile, renderUnit } from './unit.js'

/**
 * `magflock service install|uninstall|status`: a systemd unit that runs the kernel in the
 * foreground and restarts it (see unit.ts for the unit's choices). Writes the unit file into
 * /etc/systemd/system (or `--unit-dir`), the EnvironmentFile (0600) into the state dir, and
 * runs `systemctl daemon-reload` + `enable` when systemd is the running init and the unit
 * dir is the system one. launchd (macOS) is not done.
 */
export const SYSTEM_UNIT_DIR = '/etc/systemd/system'

export interface ServiceOptions {
  layout: StateLayout
  projectDir: string
  name: string
  unitDir?: string | undefined
  user?: string | undefined
  env?: string | undefined
  environ?: NodeJS.ProcessEnv
}

export interface ServicePlan {
  name: string
  unitFile: string
  envFile: string
  user: string
  unit: string
  /** Whether systemctl is run, and why not when it is not. */
  systemctl: { run: boolean; reason?: string }
}

export interface InstallResult extends ServicePlan {
  dryRun: boolean
  written: boolean
  enabled: boolean
  /** Whether the EnvironmentFile carries MAGFLOCK_MASTER_KEY (never the value). */
  masterKeyInEnvFile: boolean
}

export interface UninstallResult {
  name: string
  unitFile: string
  envFile: string
  dryRun: boolean
  removed: string[]
  disabled: boolean
  systemctl: { run: boolean; reason?: string }
}

export interface StatusResult {
  name: string
  unitFile: string
  installed: boolean
  /** systemd's view: `active`, `inactive`, `failed`, …; undefined when systemctl is not run. */
  active?: string
  enabled?: string
  systemctl: { run: boolean; reason?: string }
}

/** bin/run.js of this installation (dist/service/install.js → ../../bin/run.js). */
const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

async function systemctlUsable(unitDir: string): Promise<{ run: boolean; reason?: string }> {
  if (path.resolve(unitDir) !== SYSTEM_UNIT_DIR) return { run: false, reason: `the unit was written to ${unitDir}, not ${SYSTEM_UNIT_DIR}` }
  // sd_booted(): systemd is the running init exactly when this directory exists.
  if (!(await exists('/run/systemd/system'))) return { run: false, reason: 'systemd is not the running init on this machine' }
  return { run: true }
}

export async function planService(opts: ServiceOptions): Promise<ServicePlan> {
  assertServiceName(opts.name)
  const unitDir = opts.unitDir ?? SYSTEM_UNIT_DIR
  // The right user is the one whose flock this is: the state dir's owner, else whoever installs.
  const owner = await fsp.stat(opts.layout.root).then((st) => userNameOf(st.uid), () => undefined)
  const user = opts.user ?? owner ?? os.userInfo().username
  lookupUser(user) // E_OS_USER_MISSING when no such user
  const envFile = path.join(opts.layout.root, `${opts.name}.service.env`)
  const unit = renderUnit({
    name: opts.name,
    description: `MagFlock kernel (${opts.projectDir})`,
    user,
    node: process.execPath,
    runJs: RUN_JS,
    projectDir: path.resolve(opts.projectDir),
    stateDir: path.resolve(opts.layout.root),
    env: opts.env,
    envFile,
  })
  return { name: opts.name, unitFile: path.join(unitDir, `${opts.name}.service`), envFile, user, unit, systemctl: await systemctlUsable(unitDir) }
}

/** Refuses to overwrite or remove a unit file someone else wrote. */
async function assertOurs(unitFile: string): Promise<boolean> {
  let text: string
  try {
    text = await fsp.readFile(unitFile, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  if (!text.startsWith(MARKER)) throw SERVICE_UNIT_FOREIGN({ file: unitFile })
  return true
}

export async function installService(opts: ServiceOptions & { dryRun?: boolean }): Promise<InstallResult> {
  const plan = await planService(opts)
  const masterKey = (opts.environ ?? process.env).MAGFLOCK_MASTER_KEY || undefined
  const base = { ...plan, dryRun: opts.dryRun === true, masterKeyInEnvFile: masterKey !== undefined }
  await assertOurs(plan.unitFile)
  if (opts.dryRun) return { ...base, written: false, enabled: false }
  const envText = renderEnvFile({ masterKey, keyFile: opts.layout.masterKey })
  // The env file is read by systemd (as root) before it starts the kernel: 0600 is enough.
  await fsp.mkdir(opts.layout.root, { recursive: true, mode: 0o700 })
  const hadEnvFile = await exists(plan.envFile)
  await writeOrDeny(plan.envFile, envText, 0o600)
  try {
    await writeOrDeny(plan.unitFile, plan.unit, 0o644)
  } catch (err) {
    // No half install: an env file without its unit is removed again.
    if (!hadEnvFile) await fsp.rm(plan.envFile, { force: true })
    throw err
  }
  let enabled = false
  if (plan.systemctl.run) {
    await run('systemctl', ['daemon-reload'], { timeoutMs: 30_000 })
    await run('systemctl', ['enable', `${plan.name}.service`], { timeoutMs: 30_000 })
    enabled = true
  }
  return { ...base, written: true, enabled }
}

async function writeOrDeny(file: string, text: string, mode: number): Promise<void> {
  try {
    await writeFileAtomic(file, text, { mode })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw SERVICE_WRITE_DENIED({ file }, { cause: err })
    throw err
  }
}

export async function uninstallService(opts: ServiceOptions & { dryRun?: boolean }): Promise<UninstallResult> {
  assertServiceName(opts.name)
  const unitDir = opts.unitDir ?? SYSTEM_UNIT_DIR
  const unitFile = path.join(unitDir, `${opts.name}.service`)
  const envFile = path.join(opts.layout.root, `${opts.name}.service.env`)
  const systemctl = await systemctlUsable(unitDir)
  const ours = await assertOurs(unitFile)
  const present = [...(ours ? [unitFile] : []), ...((await exists(envFile)) ? [envFile] : [])]
  if (opts.dryRun) return { name: opts.name, unitFile, envFile, dryRun: true, removed: present, disabled: false, systemctl }
  let disabled = false
  if (systemctl.run && ours) {
    // Stops the kernel (and with it Postgres, fast shutdown) before the unit goes away.
    await run('systemctl', ['disable', '--now', `${opts.name}.service`], { timeoutMs: 180_000 })
    disabled = true
  }
  for (const f of present) await fsp.rm(f, { force: true })
  if (systemctl.run) await run('systemctl', ['daemon-reload'], { timeoutMs: 30_000 })
  return { name: opts.name, unitFile, envFile, dryRun: false, removed: present, disabled, systemctl }
}

export async function serviceStatus(opts: ServiceOptions): Promise<StatusResult> {
  assertServiceName(opts.name)
  const unitDir = opts.unitDir ?? SYSTEM_UNIT_DIR
  const unitFile = path.join(unitDir, `${opts.name}.service`)
  const installed = await assertOurs(unitFile)
  const systemctl = await systemctlUsable(unitDir)
  if (!systemctl.run) return { name: opts.name, unitFile, installed, systemctl }
  // is-active / is-enabled exit non-zero for "inactive" / "disabled": read their output.
  const active = await run('systemctl', ['is-active', `${opts.name}.service`], { reject: false, timeoutMs: 10_000 })
  const enabled = await run('systemctl', ['is-enabled', `${opts.name}.service`], { reject: false, timeoutMs: 10_000 })
  return { name: opts.name, unitFile, installed, active: active.stdout.trim() || 'unknown', enabled: enabled.stdout.trim() || 'unknown', systemctl }
}
