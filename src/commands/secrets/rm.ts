import { Args } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { SECRET_NOT_FOUND } from '../../secrets/errors.js'
import { assertSecretName } from '../../secrets/names.js'
import { openSecretStore } from '../../secrets/store.js'

export type SecretsRmResult = { name: string; deleted: true }

export default class SecretsRm extends MagflockCommand<SecretsRmResult> {
  static override summary = 'Delete a secret from the vault.'
  static override description = 'Config keys that still refer to it as secret:NAME will fail when the kernel needs them; `magflock config validate` lists the references.'
  static override examples = ['<%= config.bin %> secrets rm old-api-key']
  static override args = { name: Args.string({ required: true, description: 'Secret name.' }) }

  async run(): Promise<SecretsRmResult> {
    const { args } = await this.parse(SecretsRm)
    assertSecretName(args.name)
    const store = await openSecretStore({ layout: this.layout() })
    if (!(await store.delete(args.name))) throw SECRET_NOT_FOUND({ name: args.name })
    this.log(`Deleted ${args.name}.`)
    return { name: args.name, deleted: true }
  }
}
