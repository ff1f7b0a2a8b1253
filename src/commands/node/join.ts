import path from 'node:path'
import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { renderStatus } from '../../cli/render.js'
import { status, type StatusOutput } from '../../api/core.js'
import { NODE_BUNDLE_CODE_MISSING } from '../../cluster/errors.js'
import { checkBundleFor, importBundle, openBundle, readBundleFile, undoBundleImport, type BundleImport, type BundlePayload } from '../../cluster/join-bundle.js'
import { parseNodeFlags } from '../../cluster/node-settings.js'
import { effectiveEnv, envFlag } from '../../config/flags.js'
import { loadConfig } from '../../config/load.js'
import { ensureKernel } from '../../kernel/launcher.js'
import { launchNode, nodeFlags, prepareNode } from '../../cli/node-up.js'
import { promptHidden } from '../../secrets/prompt.js'
import { openSecretStore } from '../../secrets/store.js'

type JoinCommon = {
  node: string
  listen: string
  etcd: string[]
  standby: 'sync' | 'async'
  /** What `--bundle` put into this state directory (null without --bundle). */
  bundle: BundleImport | null
}
/** `started: false` only with --import-only (the material is in place, no kernel was started). */
export type NodeJoinResult = (StatusOutput & JoinCommon & { started: true; launched: boolean }) | (JoinCommon & { started: false; launched: false })

/**
 * A kernel on another machine joins a multi-host flock: it records the node settings, starts,
 * and clones the current leader into its instance (pg_basebackup with the replication role,
 * over TLS), which then follows the leader under the node's HA loop. --sync (the default) makes it
 * eligible as the flock's sync standby; --async never (it cannot be promoted without a loss).
 * With --bundle (from `node invite`), the certificate, passwords and etcd endpoints come from
 * the bundle first (src/cluster/join-bundle.ts).
 */
export default class NodeJoin extends MagflockCommand<NodeJoinResult> {
  static override summary = 'Join this machine to a multi-host flock: start a node kernel whose instance is a replica of the current leader.'
  static override description =
    'With --bundle (written by `magflock node invite` on a node): imports the node certificate and key, the CA certificate and the flock\'s passwords into this state directory ' +
    '(all or nothing, never overwriting a different value) and takes --etcd, --node and --ttl from it unless given. ' +
    'Without: needs the flock\'s superuser and replication passwords and TLS material in this state directory first (docs/multi-host.md, "Adding a node"). ' +
    '--sync (default): the leader may make it the flock\'s synchronous standby (the one a failover promotes); --async: it streams asynchronously and is never promoted. ' +
    'Idempotent: run again after a restart, it starts the same node. Exit 2 on bad flags or a bad bundle, 9 when the code does not open it, 6 when this state directory is another node ' +
    '(or was joined with the other of --sync/--async, or holds other secrets than the bundle) or a one-host kernel runs here, ' +
    '5 when the secrets are missing or the bundle expired, 7 when no leader could be cloned within 2 minutes.'
  static override examples = [
    '<%= config.bin %> node join --bundle b.join --listen 10.0.0.2            # asks for the code',
    '<%= config.bin %> node join --etcd https://10.0.0.1:2379,https://10.0.0.2:2379 --node b --listen 10.0.0.2',
    '<%= config.bin %> node join --etcd https://10.0.0.1:2379 --node c --listen 10.0.0.3 --async',
  ]
  static override flags = {
    env: envFlag,
    bundle: Flags.string({ summary: 'A join bundle from `magflock node invite`: certificate, passwords, flock and etcd endpoints in one file.' }),
    code: Flags.string({ summary: 'The code `node invite` printed for the bundle (asked for on a terminal when omitted).', dependsOn: ['bundle'] }),
    'import-only': Flags.boolean({ summary: 'Import the bundle into this state directory and stop (a later `node join` starts the node).', dependsOn: ['bundle'] }),
    etcd: Flags.string({ summary: `${nodeFlags.etcd.summary} Default with --bundle: the bundle's.` }),
    node: Flags.string({ summary: `${nodeFlags.node.summary} Default with --bundle: the bundle's.` }),
    listen: Flags.string({ summary: nodeFlags.listen.summary, required: true }),
    ttl: nodeFlags.ttl,
    sync: Flags.boolean({ summary: "Eligible as the flock's synchronous standby (the default).", exclusive: ['async'] }),
    async: Flags.boolean({ summary: 'Stream asynchronously: never the sync standby, never promoted by a failover.', exclusive: ['sync'] }),
  }

  async run(): Promise<NodeJoinResult> {
    const { flags } = await this.parse(NodeJoin)
    const layout = this.layout()
    const node = { etcd: flags.etcd, node: flags.node, listen: flags.listen, ttl: flags.ttl }
    let payload: BundlePayload | undefined
    const config = async () => (await loadConfig({ cwd: process.cwd(), env: effectiveEnv(flags.env) })).config
    if (flags.bundle !== undefined) {
      // Every check of the bundle before anything is written.
      const header = await readBundleFile(path.resolve(flags.bundle))
      checkBundleFor(header, { node: flags.node, flock: (await config()).flock })
      const code = flags.code ?? (process.stdin.isTTY ? await promptHidden(`Code for the join bundle of node ${header.node}: `) : undefined)
      if (!code) throw NODE_BUNDLE_CODE_MISSING({})
      payload = await openBundle(header, code)
      node.etcd ??= payload.etcd.join(',')
      node.node ??= payload.node
      node.ttl ??= Math.max(2, Math.round(payload.ttlMs / 1000))
    }
    // Validated before anything is imported (all three are known by now: --listen is required).
    const asked = parseNodeFlags(node)
    const standby = flags.async ? 'async' : 'sync'
    const bundleInto = async (p: BundlePayload) =>
      importBundle({ stateRoot: layout.root, config: await config(), secrets: await openSecretStore({ layout }), payload: p, listen: flags.listen })

    if (flags['import-only'] && payload) {
      const imported = await bundleInto(payload)
      this.log(`Imported the join bundle of node ${payload.node}: ${imported.imported.join(', ') || 'nothing new'}${imported.unchanged.length ? ` (already here: ${imported.unchanged.join(', ')})` : ''}.`)
      this.log(`Start the node with: ${this.cli} node join --bundle ${flags.bundle} --listen ${flags.listen}`)
      return { started: false, launched: false, node: asked?.node ?? payload.node, listen: flags.listen, etcd: asked?.etcd ?? payload.etcd, standby, bundle: imported }
    }
    const prepared = await prepareNode(layout, node, 'replica', flags.async ? 'async' : flags.sync ? 'sync' : undefined)
    let imported: BundleImport | null = null
    this.progressLine(payload ? 'Importing the join bundle, starting the node kernel and cloning the leader…' : 'Starting the node kernel and cloning the leader…')
    const ensured = await launchNode(
      layout,
      prepared,
      async () => {
        if (payload) imported = await bundleInto(payload)
        return ensureKernel(layout, { projectDir: process.cwd(), env: effectiveEnv(flags.env) })
      },
      // The node did not come up (a lease unsafe beside the flock's, no leader to clone…): what
      // this command imported goes again, as its settings do.
      async () => {
        const done: BundleImport | null = imported
        if (done) await undoBundleImport({ stateRoot: layout.root, secrets: await openSecretStore({ layout }), imported: done })
      },
    )
    const s = await this.kernel().call(status, {})
    const name = prepared?.settings.node ?? node.node ?? ''
    this.log(`Node ${name} ${ensured.launched ? 'joined the flock' : 'is up (kernel already running)'}.`)
    this.log(renderStatus(s))
    return { ...s, started: true, launched: ensured.launched, node: name, listen: flags.listen, etcd: prepared?.settings.etcd ?? [], standby: prepared?.settings.standby ?? 'sync', bundle: imported }
  }
}
