import type { SecretStore } from '../secrets/secret-store.js'
import { secretRefName } from '../secrets/resolve.js'
import { CONFIG_INVALID, type ConfigProblem } from './errors.js'
import { renderSource, type LoadedConfig } from './load.js'

/**
 * `config validate --check-secrets`: every `secret:NAME` the config refers to must exist in
 * the store. Checks existence only; values are read by the store but never returned.
 */
export async function missingSecretProblems(loaded: LoadedConfig, store: Pick<SecretStore, 'get'>, cwd: string): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = []
  for (const e of loaded.explain()) {
    // A list value (backup.repositories) holds its references one level down.
    for (const [key, value] of nestedValues(e.key, e.value)) {
      const name = secretRefName(value)
      if (name && (await store.get(name)) === undefined) {
        problems.push({ path: key, problem: `refers to secret "${name}", which is not in the vault`, where: renderSource(e.source, cwd) })
      }
    }
  }
  return problems
}

export async function assertSecretsPresent(loaded: LoadedConfig, store: Pick<SecretStore, 'get'>, cwd: string): Promise<void> {
  const problems = await missingSecretProblems(loaded, store, cwd)
  if (problems.length) throw CONFIG_INVALID({ problems, env: loaded.env }, { details: { problems, env: loaded.env } })
}

function nestedValues(key: string, value: unknown): Array<[string, unknown]> {
  if (Array.isArray(value)) return value.flatMap((v, i) => nestedValues(`${key}[${i}]`, v))
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => nestedValues(`${key}.${k}`, v))
  return [[key, value]]
}
