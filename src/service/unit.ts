import { SERVICE_NAME_INVALID, SERVICE_VALUE_INVALID } from './errors.js'

/**
 * The systemd unit that keeps the kernel running (pure: text in, text out; tested with
 * `systemd-analyze verify`). The kernel runs in the foreground under systemd:
 *
 *  - Restart=always: a crashed or killed kernel comes back after RestartSec, and re-adopts
 *    the running Postgres instances as after any kernel crash.
 *  - KillMode=process: `systemctl stop` signals only the kernel, which stops Postgres itself
 *    (fast shutdown, replicas and helpers in order); and when the kernel dies, systemd does
 *    not SIGKILL the Postgres processes in the unit's cgroup, so clients stay connected while
 *    the kernel restarts. (The default, control-group, would send every postmaster SIGTERM
 *    at once, a "smart" shutdown that waits for clients.)
 *  - No secret in the unit (units are world-readable, and `systemctl show` prints them):
 *    MAGFLOCK_MASTER_KEY, when used, lives in the EnvironmentFile, mode 0600.
 */
export interface UnitSpec {
  /** Unit name without `.service`. */
  name: string
  description: string
  user: string
  /** The node binary and the CLI entry (bin/run.js). */
  node: string
  runJs: string
  projectDir: string
  stateDir: string
  /** Config env (`--env`), when not the default. */
  env?: string | undefined
  envFile: string
}

export const MARKER = '# Written by `magflock service install`; `magflock service uninstall` removes it.'
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/

export function assertServiceName(name: string): void {
  if (!NAME.test(name) || name.endsWith('.service')) throw SERVICE_NAME_INVALID({ name: name.slice(0, 80) })
}

/** A path or word as one ExecStart argument: quoted, with `\`, `"`, `%` and `$` escaped. */
function arg(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`
}

/** A value in a setting that takes specifiers but no quotes (WorkingDirectory=, EnvironmentFile=). */
function plain(s: string): string {
  return s.replace(/%/g, '%%')
}

function assertClean(what: string, s: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) throw SERVICE_VALUE_INVALID({ what })
}

export function renderUnit(s: UnitSpec): string {
  assertServiceName(s.name)
  for (const [what, v] of Object.entries({ 'node path': s.node, 'CLI path': s.runJs, 'project directory': s.projectDir, 'state directory': s.stateDir, 'environment file path': s.envFile, 'user name': s.user })) assertClean(what, v)
  const exec = [s.node, s.runJs, 'kernel', 'start', '--foreground', '--state-dir', s.stateDir, ...(s.env ? ['--env', s.env] : [])].map(arg).join(' ')
  return [
    MARKER,
    '[Unit]',
    `Description=${s.description.replace(/[\r\n]/g, ' ').replace(/%/g, '%%')}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${s.user}`,
    `WorkingDirectory=${plain(s.projectDir)}`,
    `Environment=${arg(`MAGFLOCK_STATE_DIR=${s.stateDir}`)}`,
    // Secrets (MAGFLOCK_MASTER_KEY) only here, a 0600 file; never in this world-readable unit.
    `EnvironmentFile=${plain(s.envFile)}`,
    `ExecStart=${exec}`,
    'Restart=always',
    'RestartSec=2',
    'KillMode=process',
    'TimeoutStopSec=120',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n')
}

/** The EnvironmentFile: MAGFLOCK_MASTER_KEY when the installer's environment has one. */
export function renderEnvFile(opts: { masterKey?: string | undefined; keyFile: string }): string {
  const lines = ['# Environment of the MagFlock kernel service (mode 0600). Written by `magflock service install`.']
  if (opts.masterKey) {
    if (!/^[A-Za-z0-9+/=_-]+$/.test(opts.masterKey)) throw SERVICE_VALUE_INVALID({ what: 'MAGFLOCK_MASTER_KEY' })
    lines.push(`MAGFLOCK_MASTER_KEY=${opts.masterKey}`)
  } else {
    lines.push(`# No MAGFLOCK_MASTER_KEY: the vault key is read from ${opts.keyFile}.`)
  }
  return lines.join('\n') + '\n'
}
