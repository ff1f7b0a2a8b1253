import { MagflockCommand } from '../../cli/base-command.js'
import { openSecretStore } from '../../secrets/store.js'
import { localConfig, renderTlsStatus } from '../../tls/command-support.js'
import { initTls, type TlsStatus } from '../../tls/material.js'

export default class TlsInit extends MagflockCommand<TlsStatus> {
  static override summary = "Create the flock's certificate authority and this node's certificate."
  static override description =
    'The private keys go to the secret store (tls.ca.key, tls.node.key), the certificates to <state>/tls/. ' +
    'The certificate names the node (tls.nodeName or the host name), localhost, 127.0.0.1 and every address of postgres.listen, api.listen and tls.sans. ' +
    'The kernel turns Postgres ssl on at its next start. Exit 4 (E_TLS_ALREADY_INITIALIZED) when the flock already has a CA.'
  static override examples = ['<%= config.bin %> tls init', '<%= config.bin %> tls init --json']

  async run(): Promise<TlsStatus> {
    await this.parse(TlsInit)
    const layout = this.layout()
    const s = await initTls({ stateRoot: layout.root, config: await localConfig(), secrets: await openSecretStore({ layout }) })
    for (const l of renderTlsStatus(s)) this.log(l)
    this.log(`Next: restart the kernel (\`magflock kernel stop && magflock up\`) so Postgres serves TLS.`)
    return s
  }
}
