import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { openSecretStore } from '../../secrets/store.js'
import { localConfig, renderTlsStatus } from '../../tls/command-support.js'
import { rotateTls, type TlsStatus } from '../../tls/material.js'
import { applyRotation } from '../../tls/rotate.js'

export type TlsRotateResult = TlsStatus & { reloaded: string[] }

export default class TlsRotate extends MagflockCommand<TlsRotateResult> {
  static override summary = "Issue this node a new certificate (with --ca, a new flock CA first)."
  static override description =
    'Running Postgres instances load the new certificate at once (SIGHUP, no restart); the control API listener at its next start. ' +
    'With --ca every other node needs a certificate from the new CA, and clients a new CA file. Exit 5 (E_TLS_NOT_INITIALIZED) before `tls init`.'
  static override examples = ['<%= config.bin %> tls rotate', '<%= config.bin %> tls rotate --ca']
  static override flags = { ca: Flags.boolean({ summary: 'Also replace the flock CA.' }) }

  async run(): Promise<TlsRotateResult> {
    const { flags } = await this.parse(TlsRotate)
    const layout = this.layout()
    const config = await localConfig()
    const secrets = await openSecretStore({ layout })
    const s = await rotateTls({ stateRoot: layout.root, config, secrets, ca: flags.ca })
    const reloaded = await applyRotation({ layout, projectDir: process.cwd(), config, secrets })
    for (const l of renderTlsStatus(s)) this.log(l)
    this.log(reloaded.length > 0 ? `Postgres reloaded the certificate: ${reloaded.join(', ')}` : 'No running instance; the kernel uses the new certificate at its next start.')
    return { ...s, reloaded }
  }
}
