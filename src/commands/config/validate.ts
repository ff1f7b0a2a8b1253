import { Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { envFlag, effectiveEnv } from '../../config/flags.js'
import { loadConfig } from '../../config/load.js'
import { parseSetFlags } from '../../config/show.js'
import { secretRefs } from '../../secrets/resolve.js'
import { openSecretStore } from '../../secrets/store.js'
import { assertSecretsPresent } from '../../config/check-secrets.js'

export type ConfigValidateResult = { valid: true; env: string; files: string[]; secretRefs: string[] }

export default class ConfigValidate extends MagflockCommand<ConfigValidateResult> {
  static override summary = 'Check the layered configuration; exit 0 when valid, 2 with every problem listed when not.'
  static override examples = [
    '<%= config.bin %> config validate',
    '<%= config.bin %> config validate --env production --json',
    '<%= config.bin %> config validate --env production --check-secrets',
  ]
  static override flags = {
    env: envFlag,
    set: Flags.string({ summary: 'Override a key for this check, KEY=VALUE (repeatable).', multiple: true }),
    'check-secrets': Flags.boolean({ summary: 'Also check that every secret:NAME the config refers to exists in the vault.' }),
  }

  async run(): Promise<ConfigValidateResult> {
    const { flags } = await this.parse(ConfigValidate)
    const loaded = await loadConfig({ cwd: process.cwd(), env: effectiveEnv(flags.env), flags: parseSetFlags(flags.set) })
    const refs = secretRefs(loaded.config)
    if (flags['check-secrets'] && refs.length) await assertSecretsPresent(loaded, await openSecretStore({ layout: this.layout(), readOnly: true }), process.cwd())
    this.log(`Configuration for env "${loaded.env}" is valid (${loaded.files.length ? loaded.files.map((f) => f.split('/').pop()).join(' + ') : 'defaults only'}).`)
    if (refs.length) this.log(`Refers to secrets: ${refs.join(', ')}`)
    return { valid: true, env: loaded.env, files: loaded.files, secretRefs: refs }
  }
}
