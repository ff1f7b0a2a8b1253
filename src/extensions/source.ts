import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { run } from '../platform/process.js'
import { EXT_MANIFEST_INVALID, EXT_SOURCE_INVALID } from './errors.js'
import { MANIFEST_FILE, Manifest } from './manifest.js'

/**
 * Turns what `ext install` was given into a directory holding the manifest:
 *   an absolute directory path      used as is (copied by the caller);
 *   an absolute path to a .tgz      extracted (npm pack tarballs have a package/ prefix);
 *   an npm package name[@version]   `npm pack` into a temp dir, then extracted.
 * Returns the directory, the parsed manifest and a cleanup for temp files.
 */
export interface ResolvedSource {
  dir: string
  manifest: Manifest
  cleanup(): Promise<void>
}

const NPM_NAME = /^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9._^~<>=-]+)?$/

export async function resolveSource(source: string, log?: (msg: string, f: Record<string, unknown>) => void): Promise<ResolvedSource> {
  if (path.isAbsolute(source)) {
    const st = await fsp.stat(source).catch(() => undefined)
    if (!st) throw EXT_SOURCE_INVALID({ source, reason: 'no such file or directory' })
    if (st.isDirectory()) return { dir: source, manifest: await readManifest(source, source), cleanup: async () => {} }
    if (st.isFile() && /\.(tgz|tar\.gz)$/.test(source)) return extractTarball(source, source, log)
    throw EXT_SOURCE_INVALID({ source, reason: 'neither a directory nor a .tgz file' })
  }
  if (!NPM_NAME.test(source) || source.startsWith('.')) throw EXT_SOURCE_INVALID({ source: source.slice(0, 200), reason: 'not an absolute path nor an npm package name' })
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'magflock-ext-pack-'))
  try {
    // --ignore-scripts: packing a registry package must not run its lifecycle scripts in the kernel.
    const res = await run('npm', ['pack', source, '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: tmp, timeoutMs: 120_000, env: { HOME: tmp, npm_config_cache: path.join(tmp, '.npm') }, log, reject: false })
    if (res.exitCode !== 0) throw EXT_SOURCE_INVALID({ source, reason: `npm pack failed: ${res.stderr.split('\n').slice(-3).join(' ').slice(0, 300)}` })
    const file = (JSON.parse(res.stdout) as Array<{ filename: string }>)[0]?.filename
    if (!file) throw EXT_SOURCE_INVALID({ source, reason: 'npm pack produced no tarball' })
    const r = await extractTarball(path.join(tmp, path.basename(file)), source, log)
    return { ...r, cleanup: async () => { await r.cleanup(); await fsp.rm(tmp, { recursive: true, force: true }) } }
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true })
    throw err
  }
}

async function extractTarball(file: string, source: string, log?: (msg: string, f: Record<string, unknown>) => void): Promise<ResolvedSource> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'magflock-ext-tgz-'))
  const cleanup = () => fsp.rm(tmp, { recursive: true, force: true })
  try {
    // --no-same-owner/permissions: the archive's owners and modes are not trusted; the
    // installer sets them. tar refuses absolute names and `..` members by default.
    const res = await run('tar', ['-xzf', file, '-C', tmp, '--no-same-owner', '--no-same-permissions'], { timeoutMs: 60_000, log, reject: false })
    if (res.exitCode !== 0) throw EXT_SOURCE_INVALID({ source, reason: `not a readable .tgz (${res.stderr.slice(0, 200)})` })
    const entries = await fsp.readdir(tmp)
    const dir = entries.length === 1 && entries[0] === 'package' ? path.join(tmp, 'package') : tmp
    return { dir, manifest: await readManifest(dir, source), cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

export async function readManifest(dir: string, source: string): Promise<Manifest> {
  let text: string
  try {
    const st = await fsp.lstat(path.join(dir, MANIFEST_FILE))
    if (!st.isFile()) throw new Error('not a regular file')
    if (st.size > 64 * 1024) throw EXT_MANIFEST_INVALID({ source, reason: 'larger than 64 KiB' })
    text = await fsp.readFile(path.join(dir, MANIFEST_FILE), 'utf8')
  } catch (err) {
    if (EXT_MANIFEST_INVALID.is(err)) throw err
    throw EXT_MANIFEST_INVALID({ source, reason: `${MANIFEST_FILE} is missing` })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw EXT_MANIFEST_INVALID({ source, reason: 'not valid JSON' })
  }
  const parsed = Manifest.safeParse(raw)
  if (!parsed.success) {
    const i = parsed.error.issues[0]
    throw EXT_MANIFEST_INVALID({ source, reason: `${i?.path.join('.') || 'manifest'}: ${i?.message ?? 'invalid'}` })
  }
  return parsed.data
}
