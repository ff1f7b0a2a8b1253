import { MagflockCommand } from '../../cli/base-command.js'
import { isInternalName, pendingName } from '../../secrets/names.js'
import { openSecretStore } from '../../secrets/store.js'

export type SecretsListResult = { store: 'keychain' | 'file'; location: string; secrets: Array<{ name: string; pendingRotation: boolean }> }

export default class SecretsList extends MagflockCommand<SecretsListResult> {
  static override summary = 'List secret names (never values) and which store holds them.'
  static override examples = ['<%= config.bin %> secrets list', '<%= config.bin %> secrets list --json']

  async run(): Promise<SecretsListResult> {
    await this.parse(SecretsList)
    const store = await openSecretStore({ layout: this.layout(), readOnly: true })
    const names = await store.list()
    const pending = new Set(names.filter((n) => n === pendingName(n.split('@')[0]!)).map((n) => n.split('@')[0]!))
    const secrets = names.filter((n) => !isInternalName(n)).map((name) => ({ name, pendingRotation: pending.has(name) }))
    this.log(`${secrets.length} secret(s) in ${store.location}:`)
    for (const s of secrets) this.log(`  ${s.name}${s.pendingRotation ? '  (rotation pending: run `magflock secrets rotate ' + s.name + '`)' : ''}`)
    return { store: store.kind, location: store.location, secrets }
  }
}
