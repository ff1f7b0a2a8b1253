import { stringify } from 'yaml'
import { redactor } from '../secrets/redact.js'
import { USAGE } from '../errors/index.js'
import { isSensitiveKey } from './keys.js'
import { flatten, renderSource, type ConfigSource, type LoadedConfig } from './load.js'

/**
 * What `config show` / `config get` print. The loader never resolves `secret:NAME`, so
 * references show as written; a literal value under a sensitive-looking key is masked, and
 * everything passes through the redactor as a last line of defence.
 */
export interface ShownEntry {
  key: string
  /** null when unset. */
  value: unknown
  source: ConfigSource
  /** Rendered source: `magflock.yaml:3`, `MAGFLOCK_POSTGRES__PORT`, `--postgres.port`, `default`. */
  where: string
}

export function maskValue(key: string, value: unknown): unknown {
  if (value === undefined) return null
  if (isSensitiveKey(key) && !(typeof value === 'string' && value.startsWith('secret:'))) return '***'
  return redactor.scrubValue(value)
}

/** The effective config with sensitive literals masked (the shape of MagflockConfig). */
export function configForDisplay(config: unknown): unknown {
  const out: Record<string, unknown> = {}
  for (const [key, value] of flatten(config)) {
    const parts = key.split('.')
    let cur = out
    for (const p of parts.slice(0, -1)) cur = (cur[p] ??= {}) as Record<string, unknown>
    cur[parts[parts.length - 1]!] = maskValue(key, value)
  }
  return out
}

export function explainForDisplay(loaded: LoadedConfig, cwd: string): ShownEntry[] {
  return loaded.explain().map((e) => ({ key: e.key, value: maskValue(e.key, e.value), source: e.source, where: renderSource(e.source, cwd) }))
}

export function renderExplain(entries: ShownEntry[]): string {
  const rows = entries.map((e) => [e.key, e.value === null ? '(unset)' : typeof e.value === 'string' ? e.value : JSON.stringify(e.value), e.where] as const)
  const w0 = Math.max(...rows.map((r) => r[0].length))
  const w1 = Math.min(40, Math.max(...rows.map((r) => r[1].length)))
  return rows.map(([k, v, w]) => `${k.padEnd(w0)}  ${v.padEnd(w1)}  ${w}`).join('\n')
}

export function renderYaml(value: unknown): string {
  return stringify(value).trimEnd()
}

/** `--set key=value` flags → the loader's flag layer. */
export function parseSetFlags(list: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const item of list ?? []) {
    const i = item.indexOf('=')
    if (i <= 0) throw USAGE({ message: `--set expects KEY=VALUE, got "${item.slice(0, 60)}"` })
    out[item.slice(0, i)] = item.slice(i + 1)
  }
  return out
}
