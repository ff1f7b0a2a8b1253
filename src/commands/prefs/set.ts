import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { PREF_KEYS, userPrefs, type PrefKey } from '../../config/prefs.js'
import { USAGE } from '../../errors/index.js'

export type PrefsSetResult = { key: PrefKey; value: string | null }

export default class PrefsSet extends MagflockCommand<PrefsSetResult> {
  static override summary = 'Set (or --unset) a per-user CLI preference: defaultEnv, defaultStateDir.'
  static override examples = ['<%= config.bin %> prefs set defaultEnv staging', '<%= config.bin %> prefs set defaultEnv --unset']
  static override args = {
    key: Args.string({ required: true, options: [...PREF_KEYS], description: 'Preference name.' }),
    value: Args.string({ description: 'New value.' }),
  }
  static override flags = { unset: Flags.boolean({ summary: 'Remove the preference.' }) }

  async run(): Promise<PrefsSetResult> {
    const { args, flags } = await this.parse(PrefsSet)
    const key = args.key as PrefKey
    const store = userPrefs()
    if (flags.unset) {
      store.delete(key)
      this.log(`${key} unset.`)
      return { key, value: null }
    }
    if (args.value === undefined) throw USAGE({ message: 'give a VALUE or --unset' })
    try {
      store.set(key, args.value)
    } catch (err) {
      throw USAGE({ message: `invalid value for ${key}: ${(err as Error).message.split('\n')[0]}` }, { cause: err })
    }
    this.log(`${key} = ${args.value}`)
    return { key, value: args.value }
  }
}
