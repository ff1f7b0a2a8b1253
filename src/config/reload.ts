import { diffConfig } from './diff.js'
import type { LoadedConfig } from './load.js'
import type { MagflockConfig } from './schema.js'

/**
 * The kernel side of `magflock config reload` (and SIGHUP). Loads the new layered config;
 * when it is invalid the loader's E_CONFIG_INVALID / E_CONFIG_SYNTAX propagates and the
 * caller keeps running on `current` (this function has no side effects). On success the
 * caller swaps in `next`, applies `applied` keys live and reports `restartRequired`.
 *
 * Note for the caller: keys in restartRequired are still taken into `next` — they show in
 * `config show` and take effect at the next restart; services that cannot change live must
 * keep using the values they started with.
 */
export async function reloadConfig(
  current: MagflockConfig,
  load: () => Promise<LoadedConfig>,
): Promise<{ next: MagflockConfig; applied: string[]; restartRequired: string[] }> {
  const loaded = await load()
  const { live, restartRequired } = diffConfig(current, loaded.config)
  return { next: loaded.config, applied: live, restartRequired }
}
