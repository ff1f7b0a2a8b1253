import { MagflockCommand } from '../../cli/base-command.js'
import { localConfig, renderTlsStatus } from '../../tls/command-support.js'
import { tlsStatus, type TlsStatus } from '../../tls/material.js'

export default class TlsStatusCommand extends MagflockCommand<TlsStatus> {
  static override summary = "Show the flock CA and this node's certificate: names, expiry, source."
  static override description = 'Reads only the certificates (never a key). `magflock doctor` warns 30 days before a certificate expires.'
  static override examples = ['<%= config.bin %> tls status', '<%= config.bin %> tls status --json']

  async run(): Promise<TlsStatus> {
    await this.parse(TlsStatusCommand)
    const s = await tlsStatus({ stateRoot: this.layout().root, projectDir: process.cwd(), config: await localConfig() })
    for (const l of renderTlsStatus(s)) this.log(l)
    return s
  }
}
