import type { SecretStore } from '../kernel/services.js'
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
    const name = secretRefName(e.value)
    if (name && (await store.get(name)) === undefined) {
      problems.push({ path: e.key, problem: `refers to secret "${name}", which is not in the vault`, where: renderSource(e.source, cwd) })
    }
  }
  return problems
}

export async function assertSecretsPresent(loaded: LoadedConfig, store: Pick<SecretStore, 'get'>, cwd: string): Promise<void> {
  const problems = await missingSecretProblems(loaded, store, cwd)
  if (problems.length) throw CONFIG_INVALID({ problems, env: loaded.env }, { details: { problems, env: loaded.env } })
}
