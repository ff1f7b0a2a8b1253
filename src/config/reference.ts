import { isLiveKey } from './diff.js'
import { allKeys, describeExpected, descriptionOf, schemaAt } from './keys.js'
import { flatten } from './load.js'
import { defaultConfig } from './schema.js'

/**
 * Generated documentation of every key, from the schema (the single source of truth):
 * docs/configuration.md embeds `configReference()` between markers, and a unit test fails
 * when the two drift apart.
 */
export function envVarFor(key: string): string {
  return 'MAGFLOCK_' + key.split('.').map((s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__')
}

export function configReference(): string {
  const defaults = new Map(flatten(defaultConfig()))
  const rows = allKeys().map((key) => {
    const s = schemaAt(key.split('.'))!
    const def = defaults.get(key)
    const shown = def === undefined ? '(unset)' : JSON.stringify(def)
    const parent = schemaAt(key.split('.').slice(0, -1))
    const desc = descriptionOf(s) ?? (parent ? descriptionOf(parent) : undefined) ?? ''
    return `| \`${key}\` | ${describeExpected(s).replace(/\|/g, '\\|')} | \`${shown}\` | \`${envVarFor(key)}\` | ${isLiveKey(key) ? 'live' : 'restart'} | ${desc.replace(/\|/g, '\\|')} |`
  })
  return ['| key | expects | default | variable | on reload | description |', '|---|---|---|---|---|---|', ...rows].join('\n')
}
