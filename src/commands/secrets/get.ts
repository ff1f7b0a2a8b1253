import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { SECRET_NOT_FOUND } from '../../secrets/errors.js'
import { assertStoreName } from '../../secrets/names.js'
import { openSecretStore } from '../../secrets/store.js'

export type SecretsGetResult = { name: string; exists: true; revealed: boolean; value?: string }

export default class SecretsGet extends MagflockCommand<SecretsGetResult> {
  static override summary = 'Check that a secret exists; print its value only with --reveal.'
  static override examples = [
    '<%= config.bin %> secrets get backup-kek',
    'PGPASSWORD="$(<%= config.bin %> secrets get postgres.superuser.password --reveal)" psql …',
    '<%= config.bin %> secrets get app.api-key --reveal --json',
  ]
  // The one command whose job is to print a secret (only with --reveal): exempt from output scrubbing.
  static override allowSecretOutput = true
  static override args = { name: Args.string({ required: true, description: 'Secret name.' }) }
  static override flags = { reveal: Flags.boolean({ summary: 'Print the value (to stdout, nothing else on the line).' }) }

  async run(): Promise<SecretsGetResult> {
    const { args, flags } = await this.parse(SecretsGet)
    assertStoreName(args.name)
    const store = await openSecretStore({ layout: this.layout(), readOnly: true })
    const value = await store.get(args.name)
    if (value === undefined) throw SECRET_NOT_FOUND({ name: args.name })
    if (!flags.reveal) {
      this.log(`${args.name} is set (hidden; --reveal prints it).`)
      return { name: args.name, exists: true, revealed: false }
    }
    // Explicitly asked for: the only place a value leaves the vault through the CLI.
    if (!this.jsonEnabled()) process.stdout.write(value + '\n')
    return { name: args.name, exists: true, revealed: true, value }
  }
}
