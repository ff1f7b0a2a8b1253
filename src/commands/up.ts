import { MagflockCommand } from '../cli/base-command.js'
import { renderStatus } from '../cli/render.js'
import type { StatusOutput } from '../api/core.js'
import { statusRoute } from '../api/lazy.js'
import { effectiveEnv, envFlag } from '../config/flags.js'
import { ensureKernel } from '../kernel/launcher.js'
import { takeEarlyUp } from '../cli/early-up.js'
import { SUPERUSER_SECRET } from '../secrets/names.js'
import { shellWord, whichOnPath } from '../cli/invocation.js'
import { findPgBinaries } from '../postgres/binaries.js'
import { SERVICE_NAME } from '../postgres/pgpass.js'
import { launchNode, nodeFlags, prepareNode } from '../cli/node-up.js'

export type UpResult = StatusOutput & { launched: boolean; cleaned: string[]; adminTokenFile: string; passwordSecret: string; pgpassFile: string; pgServiceFile: string }

export default class Up extends MagflockCommand<UpResult> {
  static override summary = 'Bring the flock up: start the kernel if needed, provision and start the primary.'
  static override description =
    'Idempotent. On a fresh state directory it initialises the primary (initdb with data checksums and scram-sha-256), ' +
    'starts it as the unprivileged postgres OS user and prints how to connect. When a kernel already runs, it reports it. ' +
    'After a kernel crash it re-adopts the running Postgres without restarting it. ' +
    'With --etcd, --node and --listen the kernel is the first node of a multi-host flock: its flock store is etcd, it takes the leader key, ' +
    'initialises the primary and runs the node HA loop (other machines join with `node join`). Exit 2 on bad node flags, 6 when the flock already has a primary elsewhere or this state directory is another node.'
  static override examples = ['<%= config.bin %> up', '<%= config.bin %> up --env production --json', 'MAGFLOCK_POSTGRES__PORT=6543 <%= config.bin %> up',
    '<%= config.bin %> up --etcd https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379 --node a --listen 10.0.0.1']
  static override flags = { env: envFlag, ...nodeFlags }

  async run(): Promise<UpResult> {
    const { flags } = await this.parse(Up)
    const layout = this.layout()
    this.progressLine('Starting the MagFlock kernel…')
    const env = effectiveEnv(flags.env)
    // --etcd/--node/--listen: the first node of a multi-host flock (docs/multi-host.md).
    const node = await prepareNode(layout, flags, 'primary')
    // bin/run.js may have started this launch before oclif loaded (src/cli/early-up.ts).
    const ensured = await launchNode(layout, node, () => takeEarlyUp(layout.root, env, process.cwd()) ?? ensureKernel(layout, { projectDir: process.cwd(), env }))
    const s = await this.kernel().call(statusRoute, {})
    const primary = s.instances.find((i) => i.role === 'primary')
    this.log(`MagFlock is up${ensured.launched ? '' : ' (kernel already running)'}.`)
    for (const c of ensured.cleaned) this.log(`  cleaned up: ${c}`)
    this.log(renderStatus(s))
    if (primary && !this.jsonEnabled()) {
      // Every line pastes as printed: the kernel's libpq service (every member, primary first,
      // read-write, so still the primary after a switchover or failover) with the password in
      // its passfile (never printed); the CLI named the way it was invoked (base-command
      // localizes `magflock …`). The `clients` line above is the same multi-host URL for apps.
      this.log('')
      this.log(`Connect:  PGSERVICEFILE=${shellWord(layout.pgService)} ${psqlCommand()} service=${SERVICE_NAME}`)
      this.log(`Password: magflock secrets get ${SUPERUSER_SECRET} --reveal`)
      this.log(`API:      curl --unix-socket ${shellWord(s.kernel.socket)} -H "Authorization: Bearer $(cat ${shellWord(layout.adminToken)})" http://magflock/v1/status`)
    }
    return { ...s, launched: ensured.launched, cleaned: ensured.cleaned, adminTokenFile: layout.adminToken, passwordSecret: SUPERUSER_SECRET, pgpassFile: layout.pgpass, pgServiceFile: layout.pgService }
  }
}

/** `psql` when the shell finds it, else the full path of the one MagFlock uses. */
function psqlCommand(): string {
  if (whichOnPath('psql', process.env.PATH)) return 'psql'
  try {
    return shellWord(findPgBinaries().tool('psql'))
  } catch {
    return 'psql'
  }
}
