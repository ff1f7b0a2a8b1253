import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MIGRATION_NAME_INVALID } from './errors.js'
import { parseFileName } from './files.js'

/**
 * `magflock migration new NAME`: the next numbered file in the migrations folder, from
 * templates/migration.sql (or .js). Numbers continue the folder's highest id with the same
 * zero-padding (5 digits in a new folder). The file is created exclusively, so a file of
 * the same name is never overwritten; two people adding a file at once get the same number,
 * which the drift check reports as a duplicate.
 */
export interface NewMigrationOptions {
  dir: string
  name: string
  type?: 'sql' | 'js'
  now?: Date
  templatesDir?: string
}

export interface NewMigrationResult {
  id: number
  file: string
  path: string
}

export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url))

export async function newMigration(opts: NewMigrationOptions): Promise<NewMigrationResult> {
  const slug = opts.name.trim()
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$/.test(slug)) throw MIGRATION_NAME_INVALID({ name: opts.name })
  const type = opts.type ?? 'sql'
  const dir = path.resolve(opts.dir)
  await fsp.mkdir(dir, { recursive: true })
  const existing = (await fsp.readdir(dir)).map((f) => ({ f, p: parseFileName(f) })).filter((x) => x.p !== undefined)
  const maxId = Math.max(0, ...existing.map((x) => x.p!.id))
  const width = Math.max(5, ...existing.map((x) => /^\d+/.exec(x.f)?.[0].length ?? 0))
  const id = maxId + 1
  const file = `${String(id).padStart(width, '0')}_${slug}.${type}`
  const template = await fsp.readFile(path.join(opts.templatesDir ?? TEMPLATES_DIR, `migration.${type}`), 'utf8')
  const text = template
    .replaceAll('{{id}}', String(id))
    .replaceAll('{{name}}', slug)
    .replaceAll('{{createdAt}}', (opts.now ?? new Date()).toISOString())
  const p = path.join(dir, file)
  await fsp.writeFile(p, text, { flag: 'wx' })
  return { id, file, path: p }
}
