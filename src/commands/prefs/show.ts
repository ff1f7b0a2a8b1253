import { MagflockCommand } from '../../cli/base-command.js'
import { PREF_KEYS, userPrefs, type UserPrefs } from '../../config/prefs.js'

export type PrefsShowResult = { file: string; prefs: UserPrefs }

export default class PrefsShow extends MagflockCommand<PrefsShowResult> {
  static override summary = 'Show your per-user CLI preferences (not project config).'
  static override examples = ['<%= config.bin %> prefs show', '<%= config.bin %> prefs show --json']

  async run(): Promise<PrefsShowResult> {
    await this.parse(PrefsShow)
    const store = userPrefs()
    const prefs: UserPrefs = {}
    for (const k of PREF_KEYS) {
      const v = store.get(k)
      if (v !== undefined) prefs[k] = v
    }
    this.log(`# ${store.path}`)
    for (const k of PREF_KEYS) this.log(`${k} = ${prefs[k] ?? '(unset)'}`)
    return { file: store.path, prefs }
  }
}
