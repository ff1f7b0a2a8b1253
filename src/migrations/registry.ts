import path from 'node:path'
import { z } from 'zod'
import { CORRUPT_STATE } from '../errors/index.js'
import { validateName } from '../databases/names.js'
import { readJsonFile, writeJsonAtomic } from '../platform/fs.js'

/**
 * `<state>/migrations.json`: the migrations folder an admin registered for a database
 * (`magflock db migrate --db NAME --dir PATH --register`, admin token). Kernel runs for any
 * role read it; no other role can change it or name a folder of its own. Database names and
 * folders read back from disk are validated like input (a hand-edited file cannot point the
 * kernel at a relative path or a name with slashes).
 */
const Entry = z.object({ dir: z.string(), registeredBy: z.string(), registeredAt: z.string() })
const RegistryFile = z.object({ version: z.literal(1), databases: z.record(z.string(), Entry) })
export type RegisteredDir = z.infer<typeof Entry>

export class MigrationDirRegistry {
  constructor(readonly file: string) {}

  async read(): Promise<Record<string, RegisteredDir>> {
    const data = await readJsonFile(this.file, (v) => RegistryFile.parse(v))
    const dbs = data?.databases ?? {}
    for (const [name, e] of Object.entries(dbs)) {
      try {
        validateName(name, 'database')
      } catch {
        throw CORRUPT_STATE({ file: this.file, reason: `"${name}" is not a valid database name` })
      }
      if (!path.isAbsolute(e.dir)) throw CORRUPT_STATE({ file: this.file, reason: `the folder of ${name} ("${e.dir}") is not an absolute path` })
    }
    return dbs
  }

  async get(database: string): Promise<RegisteredDir | undefined> {
    return (await this.read())[database]
  }

  async register(database: string, dir: string, by: string): Promise<void> {
    const dbs = await this.read()
    dbs[database] = { dir, registeredBy: by, registeredAt: new Date().toISOString() }
    await writeJsonAtomic(this.file, { version: 1, databases: dbs }, 0o600)
  }
}
