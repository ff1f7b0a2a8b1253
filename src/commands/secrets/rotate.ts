import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { secretsRotate } from '../../api/secrets.js'
import { SECRET_NOT_FOUND } from '../../secrets/errors.js'
import { generateSecret } from '../../secrets/generate.js'
import { assertSecretName, isRolePasswordSecret } from '../../secrets/names.js'
import { openSecretStore } from '../../secrets/store.js'

export type SecretsRotateResult = { name: string; rotatedAt: string; role?: string | undefined; via: 'kernel' | 'local' }

export default class SecretsRotate extends MagflockCommand<SecretsRotateResult> {
  static override summary = 'Replace a secret with a new random value; for a database role, ALTER ROLE and the vault change together.'
  static override description =
    'Role passwords (postgres.superuser.password, postgres.roles.<role>.password, db.<name>.owner.password) are rotated by the kernel: ' +
    'if any step fails the old password keeps working. Other secrets get a new generated value here. The new value is never printed.'
  static override examples = [
    '<%= config.bin %> secrets rotate postgres.superuser.password',
    '<%= config.bin %> secrets rotate backup-kek --json',
  ]
  static override args = { name: Args.string({ required: true, description: 'Secret name.' }) }
  static override flags = { bytes: Flags.integer({ summary: 'Random bytes for a plain secret (16–1024).', default: 24, min: 16, max: 1024 }) }

  async run(): Promise<SecretsRotateResult> {
    const { args, flags } = await this.parse(SecretsRotate)
    assertSecretName(args.name)
    if (isRolePasswordSecret(args.name)) {
      const r = await this.kernel().call(secretsRotate, { name: args.name })
      this.log(`Rotated ${r.name}${r.role ? ` (role ${r.role})` : ''} at ${r.rotatedAt}.`)
      return { ...r, via: 'kernel' }
    }
    const store = await openSecretStore({ layout: this.layout() })
    if ((await store.get(args.name)) === undefined) throw SECRET_NOT_FOUND({ name: args.name })
    await store.set(args.name, generateSecret(flags.bytes))
    const rotatedAt = new Date().toISOString()
    this.log(`Rotated ${args.name}. Whatever uses it needs the new value (\`magflock secrets get ${args.name} --reveal\`).`)
    return { name: args.name, rotatedAt, via: 'local' }
  }
}
