import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { isMap, parseDocument } from 'yaml'
import { writeFileAtomic } from '../platform/fs.js'
import { CONFIG_SYNTAX, CONFIG_TOO_LARGE, CONFIG_UNKNOWN_KEY } from './errors.js'
import { coerceString, isSensitiveKey, schemaAt, suggestKey } from './keys.js'
import { MAX_CONFIG_BYTES, configFiles, getIn, loadConfig, resolveEnvName } from './load.js'

/**
 * `magflock config set KEY VALUE [--env E]`: edits magflock.yaml (or magflock.<env>.yaml
 * with an env) through the YAML document model, so comments, ordering and formatting of
 * everything else stay as they were. The edited file is validated together with every other
 * layer before it is written (atomically); an invalid result is refused and nothing changes.
 */
export interface SetResult {
  file: string
  key: string
  /** The new value; `***` for sensitive keys that are not secret references. */
  value: unknown
  created: boolean
}

export async function setConfigValue(opts: {
  cwd: string
  key: string
  value: string
  env?: string | undefined
  environ?: NodeJS.ProcessEnv
}): Promise<SetResult> {
  const environ = opts.environ ?? process.env
  const keyPath = opts.key.split('.')
  const schema = schemaAt(keyPath)
  if (!schema || keyPath.some((s) => s === '')) throw CONFIG_UNKNOWN_KEY({ key: opts.key, suggestion: suggestKey(keyPath) })
  const files = configFiles(opts.cwd, opts.env ? resolveEnvName(opts.env, environ) : 'development')
  const file = opts.env ? files.overlay : files.base
  let text: string | undefined
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const rel = path.relative(opts.cwd, file) || file
  if (text !== undefined && Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw CONFIG_TOO_LARGE({ file: rel, bytes: Buffer.byteLength(text), max: MAX_CONFIG_BYTES })
  // Duplicate keys are refused by the validation below (loadConfig checks them in linear time).
  const doc = parseDocument(text ?? '', { keepSourceTokens: false, uniqueKeys: false, logLevel: 'error' })
  const bad = doc.errors[0]
  if (bad) {
    const pos = bad.linePos?.[0] ?? { line: 1, col: 1 }
    throw CONFIG_SYNTAX({ file: rel, line: pos.line, column: pos.col, reason: (bad.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?\s*$/, '') })
  }
  if (doc.contents === null || !isMap(doc.contents)) doc.contents = doc.createNode({}) as unknown as typeof doc.contents
  // Make sure every parent on the way is a mapping; a scalar in the way is replaced.
  for (let i = 1; i < keyPath.length; i++) {
    const parent = doc.getIn(keyPath.slice(0, i), true)
    if (!isMap(parent)) doc.setIn(keyPath.slice(0, i), doc.createNode({}))
  }
  const value = coerceString(schema, opts.value)
  doc.setIn(keyPath, value)
  const next = doc.toString()
  // Validate the whole layered result with the edited text in place of the file.
  await loadConfig({ cwd: opts.cwd, env: opts.env, environ, overrides: { [file]: next } })
  await writeFileAtomic(file, next, { mode: 0o644 })
  const shown = isSensitiveKey(opts.key) && !(typeof value === 'string' && value.startsWith('secret:')) ? '***' : value
  return { file, key: opts.key, value: shown, created: text === undefined }
}

/** The effective value of a key (a leaf or a whole section) from a loaded config. */
export function getConfigValue(config: unknown, key: string): unknown {
  const p = key.split('.')
  if (!schemaAt(p) || p.some((s) => s === '')) throw CONFIG_UNKNOWN_KEY({ key, suggestion: suggestKey(p) })
  return getIn(config, p)
}
