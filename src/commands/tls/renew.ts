import path from 'node:path'
import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { NODE_BUNDLE_CODE_MISSING, NODE_RENEW_NOT_JOINED } from '../../cluster/errors.js'
import { checkBundleFor, importRenewal, openBundle, readBundleFile, type RenewalImport } from '../../cluster/join-bundle.js'
import { readClusterSettings } from '../../cluster/node-settings.js'
import { promptHidden } from '../../secrets/prompt.js'
import { openSecretStore } from '../../secrets/store.js'
import { localConfig, renderTlsStatus } from '../../tls/command-support.js'
import { tlsStatus, type TlsStatus } from '../../tls/material.js'
import { applyRotation } from '../../tls/rotate.js'

export type TlsRenewResult = TlsStatus & {
  /** What the renewal bundle replaced here. */
  renewal: RenewalImport
  /** Running Postgres instances that loaded the new certificate (SIGHUP). */
  reloaded: string[]
}

/**
 * On a node that joined with a bundle (it holds no CA key, so `tls rotate` cannot renew its
 * certificate): installs the renewal bundle a node with the CA key wrote with
 * `magflock node invite NAME --renew` (src/cluster/join-bundle.ts, importRenewal).
 */
export default class TlsRenew extends MagflockCommand<TlsRenewResult> {
  static override summary = "Install this node's new certificate from a renewal bundle (`magflock node invite NAME --renew` on a node holding the flock CA)."
  static override description =
    'For a node that joined with a bundle: it holds no CA key, so `tls rotate` cannot renew its certificate. Every check comes before anything is written: the bundle is a renewal ' +
    "for this node of this project's flock, not expired, the code opens it, its certificate matches its key and CA and still names this node's --listen address. Then the new key " +
    'goes into the secret store and the certificate into <state>/tls (the CA certificate too if the flock CA was replaced); running Postgres instances load it at once (SIGHUP, no ' +
    'restart), the control API listener at its next start. The passwords are not in a renewal bundle and stay as they are. Exit 2 on a bad bundle, one for another node or a join ' +
    'bundle, 9 when the code does not open it, 5 when it expired, this state directory is not a node or its TLS is your own files.'
  static override examples = ['<%= config.bin %> tls renew --bundle b.renew            # asks for the code', '<%= config.bin %> tls renew --bundle b.renew --code 7KQ2M-… --json']
  static override flags = {
    bundle: Flags.string({ summary: 'The renewal bundle from `magflock node invite NAME --renew`.', required: true }),
    code: Flags.string({ summary: 'The code `node invite` printed for it (asked for on a terminal when omitted).' }),
  }

  async run(): Promise<TlsRenewResult> {
    const { flags } = await this.parse(TlsRenew)
    const layout = this.layout()
    const config = await localConfig()
    // Every check the header allows before the code is asked for.
    const settings = await readClusterSettings(layout.root)
    if (!settings) throw NODE_RENEW_NOT_JOINED({ reason: 'it has no node settings (<state>/cluster.json): it never joined a multi-host flock' })
    const header = await readBundleFile(path.resolve(flags.bundle))
    checkBundleFor(header, { node: settings.node, flock: config.flock })
    const code = flags.code ?? (process.stdin.isTTY ? await promptHidden(`Code for the renewal bundle of node ${header.node}: `) : undefined)
    if (!code) throw NODE_BUNDLE_CODE_MISSING({})
    const payload = await openBundle(header, code)
    const secrets = await openSecretStore({ layout })
    const renewal = await importRenewal({ stateRoot: layout.root, config, secrets, payload })
    const reloaded = await applyRotation({ layout, projectDir: process.cwd(), config, secrets })
    const s = await tlsStatus({ stateRoot: layout.root, projectDir: process.cwd(), config, secrets })
    this.log(renewal.replaced.length > 0 ? `Renewed node ${renewal.node}'s certificate: replaced ${renewal.replaced.join(', ')}${renewal.caReplaced ? ' (a new flock CA)' : ''}.` : `Node ${renewal.node} already has this certificate: nothing changed.`)
    for (const l of renderTlsStatus(s)) this.log(l)
    this.log(reloaded.length > 0 ? `Postgres reloaded the certificate: ${reloaded.join(', ')}` : 'No running instance; the kernel uses the new certificate at its next start.')
    return { ...s, renewal, reloaded }
  }
}
