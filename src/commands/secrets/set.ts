import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { SECRET_NO_VALUE } from '../../secrets/errors.js'
import { generateSecret } from '../../secrets/generate.js'
import { assertSecretName } from '../../secrets/names.js'
import { promptHidden, readAllStdin } from '../../secrets/prompt.js'
import { redactor } from '../../secrets/redact.js'
import { openSecretStore } from '../../secrets/store.js'

export type SecretsSetResult = { name: string; store: 'keychain' | 'file'; created: boolean; generated: boolean }

export default class SecretsSet extends MagflockCommand<SecretsSetResult> {
  static override summary = 'Store a secret in the vault (value from stdin, a hidden prompt, or generated).'
  static override description =
    'The value never goes on the command line unless you pass --value explicitly (it would land in shell history). ' +
    'Refer to it from magflock.yaml as secret:NAME. The value is never printed; `secrets get NAME --reveal` shows it.'
  static override examples = [
    'printf %s "$PASSWORD" | <%= config.bin %> secrets set app.api-key --from-stdin',
    '<%= config.bin %> secrets set backup-kek --generate',
    '<%= config.bin %> secrets set smtp.password            # prompts without echo',
  ]
  static override args = { name: Args.string({ required: true, description: 'Secret name: letters, digits, ".", "_", "-".' }) }
  static override flags = {
    'from-stdin': Flags.boolean({ summary: 'Read the value from stdin (one trailing newline is dropped).', exclusive: ['generate', 'value'] }),
    generate: Flags.boolean({ summary: 'Generate a random URL-safe value (32 characters).', exclusive: ['from-stdin', 'value'] }),
    value: Flags.string({ summary: 'The value itself. Lands in shell history: prefer --from-stdin.', exclusive: ['from-stdin', 'generate'] }),
    bytes: Flags.integer({ summary: 'Random bytes for --generate (16–1024).', default: 24, min: 16, max: 1024 }),
  }

  async run(): Promise<SecretsSetResult> {
    const { args, flags } = await this.parse(SecretsSet)
    assertSecretName(args.name)
    let value: string
    if (flags.generate) value = generateSecret(flags.bytes)
    else if (flags.value !== undefined) value = flags.value
    else if (flags['from-stdin']) value = await readAllStdin()
    else if (process.stdin.isTTY) value = await promptHidden(`Value for ${args.name}: `)
    else throw SECRET_NO_VALUE()
    if (value === '') throw SECRET_NO_VALUE()
    redactor.add(value)
    const store = await openSecretStore({ layout: this.layout() })
    const created = (await store.get(args.name)) === undefined
    await store.set(args.name, value)
    this.log(`${created ? 'Stored' : 'Updated'} ${args.name}${flags.generate ? ' (generated)' : ''} in the ${store.kind === 'file' ? 'encrypted vault file' : 'OS keychain'}.`)
    return { name: args.name, store: store.kind, created, generated: flags.generate }
  }
}
