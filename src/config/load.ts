import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { LineCounter, isMap, isScalar, parseDocument, visit, type Document, type Node } from 'yaml'
import { isMagflockError } from '../errors/index.js'
import { redactor } from '../secrets/redact.js'
import { CONFIG_BAD_ENV, CONFIG_INVALID, CONFIG_READ_FAILED, CONFIG_SYNTAX, CONFIG_TOO_LARGE, MAX_LISTED_PROBLEMS, type ConfigProblem } from './errors.js'
import { childKeys, coerceString, describeExpected, isSensitiveKey, kindOf, schemaAt, suggest, suggestKey } from './keys.js'
import { MagflockConfig } from './schema.js'

/**
 * Layered configuration, lowest first:
 *
 *   built-in defaults → magflock.yaml → magflock.<env>.yaml → MAGFLOCK_* variables → flags
 *
 * Each layer is read into a plain object plus a map from key path to where each value came
 * from; the layers are deep-merged (mappings merge, anything else replaces) and the result
 * is validated once against the zod schema. Every problem is reported together, each naming
 * the key, the value, what was expected and the layer (file:line or variable) it came from.
 *
 * An empty YAML value (`binDir:` or a section with nothing under it) means "not set here":
 * the lower layer's value stays. An unknown key is refused whatever its value, empty included.
 *
 * The file layers are also validated on their own (defaults + files, no variables or flags):
 * an invalid value in magflock.yaml is refused even while MAGFLOCK_* overrides it, so the
 * file never holds a value that breaks the day the variable is unset.
 *
 * Loading is linear in the file size, and files above MAX_CONFIG_BYTES are refused before
 * they are parsed (a config file is a few kilobytes; a huge one is a mistake or an attack).
 */
export type ConfigLayer = 'default' | 'file' | 'env-file' | 'environment' | 'flag'

export interface ConfigSource {
  layer: ConfigLayer
  file?: string
  line?: number
  column?: number
  variable?: string
  flag?: string
}

export interface ExplainEntry {
  key: string
  value: unknown
  source: ConfigSource
}

export interface LoadedConfig {
  config: MagflockConfig
  env: string
  /** Config files that exist and were read, lowest layer first. */
  files: string[]
  explain(): ExplainEntry[]
  sourceOf(key: string): ConfigSource
}

export interface LoadOptions {
  /** Project directory: where magflock.yaml lives. */
  cwd: string
  /** Environment name; else MAGFLOCK_ENV, else `development`. */
  env?: string | undefined
  environ?: NodeJS.ProcessEnv
  /** Command-flag overrides by dotted key: { 'postgres.port': 5544 }. */
  flags?: Record<string, unknown>
  /** File path → text to use instead of reading the file (`config set` validates before writing). */
  overrides?: Record<string, string>
}

export const DEFAULT_ENV = 'development'
/** Largest magflock.yaml / magflock.<env>.yaml accepted, in bytes. */
export const MAX_CONFIG_BYTES = 1024 * 1024
const ENV_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
/** MAGFLOCK_* variables that are not config keys. */
const NON_CONFIG_VARS = new Set(['ENV', 'STATE_DIR', 'TOKEN', 'MASTER_KEY', 'PREFS_DIR', 'KEEP_TMP', 'SECRETS_STORE'])

type Obj = Record<string, unknown>

export function resolveEnvName(env: string | undefined, environ: NodeJS.ProcessEnv = process.env): string {
  const name = env ?? (environ.MAGFLOCK_ENV || undefined) ?? DEFAULT_ENV
  if (!ENV_NAME.test(name)) throw CONFIG_BAD_ENV({ env: name.slice(0, 40) })
  return name
}

export function configFiles(cwd: string, env: string): { base: string; overlay: string } {
  return { base: path.join(cwd, 'magflock.yaml'), overlay: path.join(cwd, `magflock.${env}.yaml`) }
}

export async function loadConfig(opts: LoadOptions): Promise<LoadedConfig> {
  const environ = opts.environ ?? process.env
  const env = resolveEnvName(opts.env, environ)
  const { base, overlay } = configFiles(opts.cwd, env)
  const merger = new Merger()
  const problems: Array<ConfigProblem & { source?: ConfigSource }> = []
  const files: string[] = []

  // The file layers alone (over the defaults), validated on their own below.
  const fileMerger = new Merger()

  for (const [file, layer] of [
    [base, 'file'],
    [overlay, 'env-file'],
  ] as const) {
    const override = opts.overrides?.[file]
    if (override !== undefined) assertSize(file, Buffer.byteLength(override), opts.cwd)
    const text = override ?? (await readOptional(file, opts.cwd))
    if (text === undefined) continue
    files.push(file)
    const parsed = parseYamlLayer(text, file, layer, opts.cwd)
    if (parsed.problem) problems.push(parsed.problem)
    else {
      merger.apply(parsed)
      fileMerger.apply(parsed)
    }
  }

  const envLayer = environmentLayer(environ)
  problems.push(...envLayer.problems)
  merger.apply(envLayer)

  const flagLayer = flagsLayer(opts.flags ?? {})
  problems.push(...flagLayer.problems)
  merger.apply(flagLayer)

  const sourceOf = (key: string): ConfigSource => merger.sourceOf(key)
  // Only problems with a value a file set count here; the rest are the merged pass's to report.
  const fileOnly = schemaProblems(fileMerger, opts.cwd).filter((p) => p.layer === 'file' || p.layer === 'env-file')
  const merged = schemaProblems(merger, opts.cwd)
  problems.push(...fileOnly.map(({ layer: _l, ...p }) => p), ...merged.map(({ layer: _l, ...p }) => p))
  const parsed = MagflockConfig.safeParse(merger.value)
  if (problems.length > 0) {
    const all = dedupe(problems.map(({ source: _s, ...p }) => p))
    const clean = all.slice(0, MAX_LISTED_PROBLEMS)
    throw CONFIG_INVALID({ problems: clean, env, total: all.length }, { details: { problems: clean, total: all.length, env } })
  }
  if (!parsed.success) throw new Error('unreachable: the merged config failed validation without a problem')
  const config = parsed.data as MagflockConfig
  return {
    config,
    env,
    files,
    sourceOf,
    explain: () => flatten(config).map(([key, value]) => ({ key, value, source: sourceOf(key) })),
  }
}

/** Every schema problem of a merged value, each with where its value came from. */
function schemaProblems(merger: Merger, cwd: string): Array<ConfigProblem & { layer: ConfigLayer }> {
  const parsed = MagflockConfig.safeParse(merger.value)
  if (parsed.success) return []
  const out: Array<ConfigProblem & { layer: ConfigLayer }> = []
  const at = (key: string) => {
    const src = merger.sourceOf(key)
    return { where: renderSource(src, cwd), layer: src.layer }
  }
  for (const issue of parsed.error.issues) {
    const path = issue.path.map(String)
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const key = [...path, k].join('.')
        if (k.includes('.') && schemaAt([...path, ...k.split('.')])) {
          // `postgres.port: 5` at the top: YAML keys are not split on dots.
          out.push({ path: key, problem: `unknown key; did you mean "${key}" nested (one level per key)?`, ...at(key), suggestion: key })
          continue
        }
        const s = suggestKey([...path, k])
        out.push({ path: key, problem: s ? `unknown key; did you mean "${s}"?` : 'unknown key', ...at(key), ...(s ? { suggestion: s } : {}) })
      }
      continue
    }
    const key = path.join('.') || '(root)'
    const value = getIn(merger.value, path)
    const schema = schemaAt(path)
    const expected = schema ? describeExpected(schema) : issue.message
    out.push({ path: key, problem: `expected ${expected}, got ${describeValue(key, value)}`, ...at(key) })
  }
  return out
}

function assertSize(file: string, bytes: number, cwd: string): void {
  if (bytes > MAX_CONFIG_BYTES) throw CONFIG_TOO_LARGE({ file: path.relative(cwd, file) || file, bytes, max: MAX_CONFIG_BYTES })
}

/** `file:line`, the variable name, `--flag`, or `default`. */
export function renderSource(s: ConfigSource, cwd: string): string {
  switch (s.layer) {
    case 'file':
    case 'env-file': {
      const f = s.file ? path.relative(cwd, s.file) || s.file : '?'
      return s.line ? `${f}:${s.line}` : f
    }
    case 'environment':
      return s.variable ?? 'environment'
    case 'flag':
      return s.flag ?? 'flag'
    default:
      return 'default'
  }
}

/** A value as it may appear in an error: sensitive keys are never echoed. */
export function describeValue(key: string, value: unknown): string {
  if (value === undefined) return 'nothing'
  if (isSensitiveKey(key) && !(typeof value === 'string' && value.startsWith('secret:'))) {
    return `a hidden ${Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value} value`
  }
  let s: string
  try {
    s = JSON.stringify(value) ?? String(value)
  } catch {
    s = String(value)
  }
  if (s.length > 60) s = s.slice(0, 57) + '…'
  return redactor.scrub(s)
}

async function readOptional(file: string, cwd: string): Promise<string | undefined> {
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(file, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    throw CONFIG_READ_FAILED({ file, reason: code ?? String(err) }, { cause: err })
  }
  try {
    // Checked on the open handle before reading, so a huge file is never read into memory.
    const st = await fh.stat()
    if (!st.isFile()) throw CONFIG_READ_FAILED({ file, reason: 'not a regular file' })
    assertSize(file, st.size, cwd)
    const text = await fh.readFile('utf8')
    assertSize(file, Buffer.byteLength(text), cwd) // it grew since the stat
    return text
  } catch (err) {
    if (isMagflockError(err)) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw CONFIG_READ_FAILED({ file, reason: code ?? String(err) }, { cause: err })
  } finally {
    await fh.close()
  }
}


// ---------------------------------------------------------------------------------------
// Layers

interface Layer {
  value: Obj
  /** Where each leaf value was set; a key set as a whole (a section from JSON) covers its children. */
  sources: Map<string, ConfigSource>
  /** Where each mapping key was written: used for that exact key only (unknown-key errors). */
  containers?: Map<string, ConfigSource>
}

/**
 * Parses one YAML file. Syntax errors throw E_CONFIG_SYNTAX with line and column; a document
 * that is not a mapping is a config problem. Positions come from the YAML AST.
 */
export function parseYamlLayer(
  text: string,
  file: string,
  layer: 'file' | 'env-file',
  cwd: string,
): Layer & { problem?: ConfigProblem } {
  const lc = new LineCounter()
  const rel = path.relative(cwd, file) || file
  let doc: Document.Parsed
  try {
    // uniqueKeys is checked below in one pass: the library's check compares every key with
    // every earlier key of its mapping, quadratic in the number of keys. logLevel 'error'
    // keeps the library from printing Node warnings to the user; anything it would warn
    // about is refused below with a position instead.
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false, strict: true, logLevel: 'error' })
  } catch (err) {
    throw CONFIG_SYNTAX({ file: rel, line: 1, column: 1, reason: firstLine(err) }, { cause: err })
  }
  // Warnings (an unresolved tag, an unsupported %YAML version) are refused like errors.
  const err = doc.errors[0] ?? doc.warnings[0]
  if (err) {
    const pos = err.linePos?.[0] ?? lc.linePos(err.pos[0])
    throw CONFIG_SYNTAX({ file: rel, line: pos.line, column: pos.col, reason: cleanYamlMessage(err.message) })
  }
  const sources = new Map<string, ConfigSource>()
  const containers = new Map<string, ConfigSource>()
  const at = (node: Node | null | undefined, fallback: number): ConfigSource => {
    const off = node?.range?.[0] ?? fallback
    const p = lc.linePos(off)
    return { layer, file, line: p.line, column: p.col }
  }
  assertPlainUniqueKeys(doc, (node, reason) => {
    const p = lc.linePos(node?.range?.[0] ?? 0)
    return CONFIG_SYNTAX({ file: rel, line: p.line, column: p.col, reason })
  })
  const contents = doc.contents
  if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === undefined))) {
    return { value: {}, sources }
  }
  if (!isMap(contents)) {
    const src = at(contents, 0)
    return {
      value: {},
      sources,
      problem: { path: '(root)', problem: 'expected a mapping of keys at the top of the file', where: `${rel}:${src.line}` },
      containers,
    }
  }
  const walk = (map: Node, prefix: string[]) => {
    if (!isMap(map)) return
    for (const pair of map.items) {
      const keyNode = pair.key as Node | null
      const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode)
      const p = [...prefix, key]
      const src = at(keyNode ?? (pair.value as Node | null), map.range?.[0] ?? 0)
      const v = pair.value as Node | null
      // Aliases are resolved by toJS below; the key's line is the best position for them.
      if (v && isMap(v)) {
        containers.set(p.join('.'), src)
        walk(v, p)
      } else sources.set(p.join('.'), src)
    }
  }
  walk(contents, [])
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    throw CONFIG_SYNTAX({ file: rel, line: 1, column: 1, reason: firstLine(e) }, { cause: e })
  }
  return { value: dropNulls(value, []) as Obj, sources, containers }
}

const PLAIN_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`))

/**
 * Every mapping key in the document is a scalar (a list or mapping as a key would be
 * stringified by the library, with a Node warning) and unique within its mapping. One pass
 * with a set per mapping, so linear in the number of keys.
 */
function assertPlainUniqueKeys(doc: Document.Parsed, fail: (node: Node | null | undefined, reason: string) => Error): void {
  // Explicit tags beyond plain data (!!set, !!binary, !!timestamp, !custom) would become
  // objects the schema does not expect (a Set passes as an empty mapping), so they are refused.
  const tag = (node: Node) => {
    if (node.tag && !PLAIN_TAGS.has(node.tag)) throw fail(node, `the tag ${node.tag.replace('tag:yaml.org,2002:', '!!')} is not supported in a config file`)
  }
  visit(doc, {
    Scalar(_, n) {
      tag(n)
    },
    Seq(_, n) {
      tag(n)
    },
    Map(_, map) {
      tag(map)
      const seen = new Set<unknown>()
      for (const pair of map.items) {
        const k = pair.key as Node | null
        if (k === null) continue // `: value` with no key: the parser already reported it
        if (!isScalar(k)) throw fail(k, 'a key must be a plain name, not a list, mapping or alias')
        if (seen.has(k.value)) throw fail(k, 'Map keys must be unique')
        seen.add(k.value)
      }
    },
  })
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unreadable'
}

function cleanYamlMessage(msg: string): string {
  // The parser recurses per nesting level and reports a blown stack as its message.
  if (msg.includes('Maximum call stack size exceeded')) return 'nested too deeply'
  return (msg.split('\n')[0] ?? msg).replace(/ at line \d+, column \d+:?\s*$/, '').trim()
}

/**
 * Drops empty values ("not set here"), except under a key the schema does not know: that
 * stays, so validation reports the unknown key even when nothing is written after it.
 */
function dropNulls(v: unknown, at: string[]): unknown {
  if (!isPlainObject(v)) return v
  const known = at.length === 0 || schemaAt(at) !== undefined
  const out: Obj = {}
  for (const [k, x] of Object.entries(v)) {
    const p = [...at, k]
    if ((x === null || x === undefined) && known && schemaAt(p) !== undefined) continue
    define(out, k, dropNulls(x, p))
  }
  return out
}

/**
 * MAGFLOCK_<SECTION>__<KEY>[__<SUBKEY>…] → section.key.subkey. Segments match schema keys
 * case-insensitively with underscores ignored, so MAGFLOCK_KERNEL__LOG_LEVEL and
 * MAGFLOCK_KERNEL__LOGLEVEL both mean kernel.logLevel; below postgres.settings the segment is
 * the lower-cased setting name (MAGFLOCK_POSTGRES__SETTINGS__WORK_MEM → work_mem).
 * Values are converted to the key's type ("5433" → 5433, "true" → true).
 */
export function environmentLayer(environ: NodeJS.ProcessEnv): Layer & { problems: ConfigProblem[] } {
  const value: Obj = {}
  const sources = new Map<string, ConfigSource>()
  const problems: ConfigProblem[] = []
  const names = Object.keys(environ)
    .filter((n) => n.startsWith('MAGFLOCK_'))
    .sort()
  for (const variable of names) {
    const raw = environ[variable]
    if (raw === undefined) continue
    const rest = variable.slice('MAGFLOCK_'.length)
    if (NON_CONFIG_VARS.has(rest) || rest.startsWith('TEST_')) continue
    const segs = rest.split('__')
    const mapped = mapEnvSegments(segs)
    if (!mapped.ok) {
      // A variable without "__" that is no top-level key is someone else's (MAGFLOCK_FOO):
      // ignore it. With "__" it was meant as config, so a typo must not pass silently.
      if (segs.length === 1) continue
      problems.push({
        path: mapped.known.concat(segs.slice(mapped.known.length).map((s) => s.toLowerCase())).join('.'),
        problem: mapped.suggestion ? `unknown key; did you mean "${mapped.suggestion}"?` : 'unknown key',
        where: variable,
        ...(mapped.suggestion ? { suggestion: mapped.suggestion } : {}),
      })
      continue
    }
    setIn(value, mapped.path, coerceString(schemaAt(mapped.path), raw))
    sources.set(mapped.path.join('.'), { layer: 'environment', variable })
  }
  return { value, sources, problems }
}

const norm = (s: string) => s.replace(/_/g, '').toLowerCase()

function mapEnvSegments(segs: string[]): { ok: true; path: string[] } | { ok: false; known: string[]; suggestion?: string } {
  const out: string[] = []
  for (const seg of segs) {
    const parent = schemaAt(out)
    if (!parent || seg === '') return { ok: false, known: out }
    if (kindOf(parent) === 'record') {
      out.push(seg.toLowerCase())
      continue
    }
    const kids = childKeys(parent)
    const hit = kids?.find((k) => norm(k) === norm(seg))
    if (!hit) {
      const s = kids ? suggest(norm(seg), kids.map(norm)) : undefined
      const real = s ? kids!.find((k) => norm(k) === s) : undefined
      return { ok: false, known: out, ...(real ? { suggestion: [...out, real].join('.') } : {}) }
    }
    out.push(hit)
  }
  return { ok: true, path: out }
}

/** Flags by dotted key; strings are converted to the key's type like variables are. */
export function flagsLayer(flags: Record<string, unknown>): Layer & { problems: ConfigProblem[] } {
  const value: Obj = {}
  const sources = new Map<string, ConfigSource>()
  const problems: ConfigProblem[] = []
  for (const [key, raw] of Object.entries(flags)) {
    if (raw === undefined) continue
    const p = key.split('.')
    const schema = schemaAt(p)
    const flag = `--${key}`
    if (!schema) {
      const s = suggestKey(p)
      problems.push({ path: key, problem: s ? `unknown key; did you mean "${s}"?` : 'unknown key', where: flag, ...(s ? { suggestion: s } : {}) })
      continue
    }
    setIn(value, p, typeof raw === 'string' ? coerceString(schema, raw) : raw)
    sources.set(key, { layer: 'flag', flag })
  }
  return { value, sources, problems }
}

// ---------------------------------------------------------------------------------------
// Merging with provenance

class Merger {
  value: Obj = {}
  private sources = new Map<string, ConfigSource>()
  private containers = new Map<string, ConfigSource>()

  apply(layer: Layer): void {
    const replaced = new Set<string>()
    this.merge(this.value, layer.value, [], replaced)
    // Replaced wholesale: what lower layers said below those keys no longer applies. One pass
    // over the known sources (each checked against its ancestors), not one per replaced key.
    if (replaced.size > 0) {
      for (const m of [this.sources, this.containers]) {
        for (const key of [...m.keys()]) {
          const parts = key.split('.')
          for (let i = 1; i < parts.length; i++) {
            if (replaced.has(parts.slice(0, i).join('.'))) {
              m.delete(key)
              break
            }
          }
        }
      }
    }
    for (const [k, s] of layer.sources) this.sources.set(k, s)
    for (const [k, s] of layer.containers ?? []) this.containers.set(k, s)
  }

  private merge(target: Obj, src: Obj, prefix: string[], replaced: Set<string>): void {
    for (const [k, v] of Object.entries(src)) {
      const p = [...prefix, k]
      const cur = Object.hasOwn(target, k) ? target[k] : undefined
      if (isPlainObject(v) && isPlainObject(cur)) {
        this.merge(cur, v, p, replaced)
      } else {
        const dotted = p.join('.')
        // Only a mapping had sources below it (lists and scalars are leaves).
        if (isPlainObject(cur)) replaced.add(dotted)
        this.containers.delete(dotted)
        define(target, k, isPlainObject(v) ? clone(v) : v)
      }
    }
  }

  sourceOf(key: string): ConfigSource {
    const exact = this.sources.get(key) ?? this.containers.get(key)
    if (exact) return exact
    const parts = key.split('.')
    for (let i = parts.length; i > 0; i--) {
      const s = this.sources.get(parts.slice(0, i).join('.'))
      if (s) return s
    }
    return { layer: 'default' }
  }
}

function clone(v: Obj): Obj {
  const out: Obj = {}
  for (const [k, x] of Object.entries(v)) define(out, k, isPlainObject(x) ? clone(x) : x)
  return out
}

/** Own-property assignment, so a key named "__proto__" is just an (unknown) key. */
function define(o: Obj, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
}

function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof Map) && !(v instanceof Set) && !(v instanceof Uint8Array)
}

function setIn(o: Obj, p: string[], v: unknown): void {
  let cur = o
  for (const seg of p.slice(0, -1)) {
    const next = Object.hasOwn(cur, seg) ? cur[seg] : undefined
    if (isPlainObject(next)) cur = next
    else {
      const fresh: Obj = {}
      define(cur, seg, fresh)
      cur = fresh
    }
  }
  define(cur, p[p.length - 1]!, v)
}

export function getIn(o: unknown, p: string[]): unknown {
  let cur: unknown = o
  for (const seg of p) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, seg)) return undefined
    cur = cur[seg]
  }
  return cur
}

/** Effective config as [dotted key, value] leaves, following the schema's shape. */
export function flatten(config: unknown, prefix: string[] = []): Array<[string, unknown]> {
  const schema = schemaAt(prefix)
  const kind = schema ? kindOf(schema) : 'unknown'
  if (kind === 'object') {
    const kids = childKeys(schema!) ?? []
    return kids.flatMap((k) => flatten(getIn(config, [k]), [...prefix, k]))
  }
  if (kind === 'record' && isPlainObject(config) && Object.keys(config).length > 0) {
    return Object.keys(config)
      .sort()
      .map((k) => [[...prefix, k].join('.'), config[k]] as [string, unknown])
  }
  return [[prefix.join('.'), config]]
}

function dedupe(ps: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>()
  return ps.filter((p) => {
    const k = `${p.path}|${p.problem}|${p.where}`
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}
