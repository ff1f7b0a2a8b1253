import { existsSync } from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline/promises'
import { Args, Flags } from '@oclif/core'
import { extEnable, extGrant, extInstall, type ExtInfo } from '../../api/extensions.js'
import { MagflockCommand } from '../../cli/base-command.js'

export type ExtInstallResult = ExtInfo

export default class ExtInstall extends MagflockCommand<ExtInstallResult> {
  static override summary = 'Install an extension from a directory, a .tgz or an npm package (grants nothing by itself).'
  static override description =
    'Each capability the manifest requests must be approved: with --grant (repeatable, for CI), or one by one at a terminal. ' +
    'Without approvals the extension is installed with no grants. Every decision is audited. Admin only. ' +
    'Exit codes: 2 bad manifest, source or capability; 4 already installed; 5 capability not requested or kernel not root.'
  static override examples = [
    '<%= config.bin %> ext install ./extensions/webhook',
    '<%= config.bin %> ext install ./webhook-1.0.0.tgz --grant events:subscribe:replication.* --grant config:read --enable --json',
    '<%= config.bin %> ext install @acme/magflock-slack',
  ]
  static override args = { source: Args.string({ required: true, description: 'A directory, a .tgz made by `npm pack`, or an npm package name.' }) }
  static override flags = {
    grant: Flags.string({ summary: 'Approve one requested capability (repeatable).', multiple: true, default: [] }),
    enable: Flags.boolean({ summary: 'Start it once installed.', default: false }),
  }

  async run(): Promise<ExtInstallResult> {
    const { args, flags } = await this.parse(ExtInstall)
    const local = path.resolve(args.source)
    const source = existsSync(local) ? local : args.source
    const interactive = flags.grant.length === 0 && !this.jsonEnabled() && Boolean(process.stdin.isTTY)
    const client = this.kernel()
    let res = await client.call(extInstall, { source, grants: flags.grant, enable: flags.enable && !interactive })
    if (interactive && res.requested.length > 0) {
      const rl = createInterface({ input: process.stdin, output: process.stderr })
      try {
        for (const cap of res.requested) {
          const answer = await rl.question(`Grant ${res.name} "${cap}"? [y/N] `)
          if (/^y(es)?$/i.test(answer.trim())) res = await client.call(extGrant, { name: res.name, capability: cap })
        }
      } finally {
        rl.close()
      }
      if (flags.enable) res = await client.call(extEnable, { name: res.name })
    }
    this.log(`Installed ${res.name} ${res.version} (runs as ${res.osUser}).`)
    this.log(`Requested: ${res.requested.join(', ') || 'nothing'}`)
    this.log(`Granted:   ${res.grants.join(', ') || 'nothing'}`)
    this.log(res.enabled ? `State: ${res.detail}` : `Start it with \`magflock ext enable ${res.name}\`.`)
    return res
  }
}
