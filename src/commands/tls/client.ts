import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { writeFileAtomic } from '../../platform/fs.js'
import { openSecretStore } from '../../secrets/store.js'
import { localConfig } from '../../tls/command-support.js'
import { issueClientCert } from '../../tls/material.js'
import { describeCert } from '../../tls/certs.js'

export type TlsClientResult = { name: string; dir: string; files: string[]; notAfter: string }

export default class TlsClient extends MagflockCommand<TlsClientResult> {
  static override summary = 'Issue a client certificate for remote CLI use over the mutual-TLS control API.'
  static override description =
    'Writes ca.crt, client.crt and client.key (0600) into --out. Copy that directory to the operator\'s machine and point MAGFLOCK_TLS_DIR (or --tls-dir) at it; ' +
    'a token is still required (`magflock token create`). The key is not kept by the flock.'
  static override examples = ['<%= config.bin %> tls client alice --out ./alice-tls']
  static override args = { name: Args.string({ required: true, description: 'Name in the certificate (CN): lowercase letters, digits, "." and "-".' }) }
  static override flags = { out: Flags.string({ summary: 'Directory to write the files into (created 0700).', required: true }) }

  async run(): Promise<TlsClientResult> {
    const { args, flags } = await this.parse(TlsClient)
    const layout = this.layout()
    const c = await issueClientCert({ stateRoot: layout.root, config: await localConfig(), secrets: await openSecretStore({ layout }), name: args.name })
    const dir = path.resolve(flags.out)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    const files = [path.join(dir, 'ca.crt'), path.join(dir, 'client.crt'), path.join(dir, 'client.key')]
    await writeFileAtomic(files[0]!, c.caPem, { mode: 0o644 })
    await writeFileAtomic(files[1]!, c.certPem, { mode: 0o644 })
    await writeFileAtomic(files[2]!, c.keyPem, { mode: 0o600 })
    const notAfter = describeCert(c.certPem).notAfter
    this.log(`Issued ${args.name} (expires ${notAfter.slice(0, 10)}) into ${dir}`)
    return { name: args.name, dir, files, notAfter }
  }
}
