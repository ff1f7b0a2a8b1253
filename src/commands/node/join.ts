import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { renderStatus } from '../../cli/render.js'
import { status, type StatusOutput } from '../../api/core.js'
import { effectiveEnv, envFlag } from '../../config/flags.js'
import { ensureKernel } from '../../kernel/launcher.js'
import { launchNode, nodeFlags, prepareNode } from '../../cli/node-up.js'

export type NodeJoinResult = StatusOutput & { launched: boolean; node: string; listen: string; etcd: string[]; standby: 'sync' | 'async' }

/**
 * A kernel on another machine joins a multi-host flock: it records the node settings, starts,
 * and clones the current leader into its instance (pg_basebackup with the replication role,
 * over TLS), which then follows the leader under the node's HA loop. --sync (the default) makes it
 * eligible as the flock's sync standby; --async never (it cannot be promoted without a loss).
 */
export default class NodeJoin extends MagflockCommand<NodeJoinResult> {
  static override summary = 'Join this machine to a multi-host flock: start a node kernel whose instance is a replica of the current leader.'
  static override description =
    'Needs the flock\'s superuser and replication passwords and TLS material in this state directory first (docs/multi-host.md, "Adding a node"). ' +
    '--sync (default): the leader may make it the flock\'s synchronous standby (the one a failover promotes); --async: it streams asynchronously and is never promoted. ' +
    'Idempotent: run again after a restart, it starts the same node. Exit 2 on bad flags, 6 when this state directory is another node (or was joined with the other of --sync/--async) or a one-host kernel runs here, ' +
    '5 when the secrets are missing, 7 when no leader could be cloned within 2 minutes.'
  static override examples = [
    '<%= config.bin %> node join --etcd https://10.0.0.1:2379,https://10.0.0.2:2379 --node b --listen 10.0.0.2',
    '<%= config.bin %> node join --etcd https://10.0.0.1:2379 --node c --listen 10.0.0.3 --async',
  ]
  static override flags = {
    env: envFlag,
    etcd: Flags.string({ summary: nodeFlags.etcd.summary, required: true }),
    node: Flags.string({ summary: nodeFlags.node.summary, required: true }),
    listen: Flags.string({ summary: nodeFlags.listen.summary, required: true }),
    ttl: nodeFlags.ttl,
    sync: Flags.boolean({ summary: "Eligible as the flock's synchronous standby (the default).", exclusive: ['async'] }),
    async: Flags.boolean({ summary: 'Stream asynchronously: never the sync standby, never promoted by a failover.', exclusive: ['sync'] }),
  }

  async run(): Promise<NodeJoinResult> {
    const { flags } = await this.parse(NodeJoin)
    const layout = this.layout()
    const node = await prepareNode(layout, flags, 'replica', flags.async ? 'async' : flags.sync ? 'sync' : undefined)
    this.progressLine('Starting the node kernel and cloning the leader…')
    const ensured = await launchNode(layout, node, () => ensureKernel(layout, { projectDir: process.cwd(), env: effectiveEnv(flags.env) }))
    const s = await this.kernel().call(status, {})
    this.log(`Node ${flags.node} ${ensured.launched ? 'joined the flock' : 'is up (kernel already running)'}.`)
    this.log(renderStatus(s))
    return { ...s, launched: ensured.launched, node: flags.node, listen: flags.listen, etcd: node?.settings.etcd ?? [], standby: node?.settings.standby ?? 'sync' }
  }
}
