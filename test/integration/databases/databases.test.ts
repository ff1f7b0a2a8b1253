import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createDatabase,
  databaseUrl,
  dropDatabase,
  ensureDatabase,
  listDatabases,
  ownerConnection,
  psqlInvocation,
  type DatabaseDeps,
} from '../../../src/databases/service.js'
import type { SecretStore } from '../../../src/kernel/services.js'
import { runMigrations } from '../../../src/migrations/runner.js'
import { run } from '../../../src/platform/process.js'
import { findPgBinaries } from '../../../src/postgres/binaries.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'
import { tempDir } from '../../helpers/tmp.js'
import { writeMigrations } from '../migrations/fixtures.js'

class MemorySecrets implements SecretStore {
  readonly map = new Map<string, string>()
  async get(name: string) {
    return this.map.get(name)
  }
  async set(name: string, value: string) {
    this.map.set(name, value)
  }
  async delete(name: string) {
    return this.map.delete(name)
  }
  async list() {
    return [...this.map.keys()]
  }
}

let server: TestPostgres
let deps: DatabaseDeps
let secrets: MemorySecrets
const tmp = tempDir('mf-db-')

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
  return 'resolved'
}

async function canLogin(cfg: pg.ClientConfig): Promise<string> {
  const c = new pg.Client(cfg)
  await c.connect()
  try {
    return (await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u
  } finally {
    await c.end()
  }
}

beforeAll(async () => {
  server = await startTestPostgres()
  secrets = new MemorySecrets()
  deps = { superuser: async (db) => server.connection(db), secrets, host: '127.0.0.1', port: server.port }
})
afterAll(async () => {
  await server?.stop()
  tmp.cleanup()
})

describe('db create', () => {
  it('creates the database and a LOGIN owner whose generated password is in the vault', async () => {
    const res = await createDatabase(deps, { name: 'shop' })
    expect(res).toEqual({ name: 'shop', owner: 'shop', created: true, roleCreated: true, passwordSecret: 'db.shop.owner.password' })
    const password = secrets.map.get('db.shop.owner.password')!
    expect(password.length).toBeGreaterThanOrEqual(32)
    expect(await canLogin({ ...server.connection('shop'), user: 'shop', password })).toBe('shop')
    const verifier = await server.query<{ p: string }>("SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'shop'")
    expect(verifier.rows[0]?.p).toMatch(/^SCRAM-SHA-256\$4096:/)
    // CONNECT is revoked from PUBLIC: another login role cannot get in.
    await server.query("CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw'")
    expect(await codeOf(canLogin({ ...server.connection('shop'), user: 'stranger', password: 'stranger-pw' }))).toBe('42501')
  })

  it('uses --owner as the owner role name', async () => {
    const res = await createDatabase(deps, { name: 'blog', owner: 'blog_admin' })
    expect(res.owner).toBe('blog_admin')
    const o = await server.query<{ o: string }>("SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = 'blog'")
    expect(o.rows[0]?.o).toBe('blog_admin')
  })

  it('says E_DB_EXISTS the second time, and --if-not-exists succeeds without changing anything', async () => {
    await createDatabase(deps, { name: 'twice' })
    const before = secrets.map.get('db.twice.owner.password')
    expect(await codeOf(createDatabase(deps, { name: 'twice' }))).toBe('E_DB_EXISTS')
    const again = await createDatabase(deps, { name: 'twice', ifNotExists: true })
    expect(again).toMatchObject({ created: false, roleCreated: false, owner: 'twice' })
    expect(secrets.map.get('db.twice.owner.password')).toBe(before)
  })

  it.each([
    ['Shop', 'uppercase'],
    ['1shop', 'digit'],
    ['shop-prod', 'only lowercase'],
    ['a'.repeat(64), '63 bytes'],
    ['pg_shop', 'reserved'],
    ['x; drop database postgres', 'only lowercase'],
  ])('refuses %s with E_DB_NAME_INVALID', async (name, why) => {
    const err = await createDatabase(deps, { name }).catch((e: Error & { code: string }) => e)
    expect((err as { code: string }).code).toBe('E_DB_NAME_INVALID')
    expect((err as Error).message).toContain(why)
  })

  it('refuses an invalid --owner before touching anything', async () => {
    expect(await codeOf(createDatabase(deps, { name: 'okname', owner: 'Bad-Owner' }))).toBe('E_DB_NAME_INVALID')
    const r = await server.query("SELECT 1 FROM pg_database WHERE datname = 'okname'")
    expect(r.rowCount).toBe(0)
  })
})

describe('db list / url', () => {
  it('lists size, owner and connections', async () => {
    await createDatabase(deps, { name: 'listed' })
    const holder = new pg.Client(server.connection('listed'))
    await holder.connect()
    try {
      const dbs = await listDatabases(deps)
      const row = dbs.find((d) => d.name === 'listed')
      expect(row).toMatchObject({ owner: 'listed', connections: 1, managed: true })
      expect(row!.sizeBytes).toBeGreaterThan(1_000_000)
      expect(dbs.find((d) => d.name === 'postgres')?.managed).toBe(false)
      expect(dbs.some((d) => d.name.startsWith('template'))).toBe(false)
    } finally {
      await holder.end()
    }
  })

  it('gives the URL without the password unless revealed', async () => {
    await createDatabase(deps, { name: 'urls' })
    const plain = await databaseUrl(deps, { name: 'urls' })
    expect(plain.url).toBe(`postgres://urls@127.0.0.1:${server.port}/urls`)
    expect(plain.password).toBeUndefined()
    expect(JSON.stringify(plain)).not.toContain(secrets.map.get('db.urls.owner.password'))
    const shown = await databaseUrl(deps, { name: 'urls', reveal: true })
    expect(shown.revealed).toBe(true)
    expect(await canLogin({ connectionString: shown.url })).toBe('urls')
  })

  it('E_DB_NOT_FOUND for an unknown database, E_DB_NO_CREDENTIALS when the vault has no owner password', async () => {
    expect(await codeOf(databaseUrl(deps, { name: 'nope' }))).toBe('E_DB_NOT_FOUND')
    await server.query('CREATE DATABASE foreign_db')
    expect(await codeOf(databaseUrl(deps, { name: 'foreign_db', reveal: true }))).toBe('E_DB_NO_CREDENTIALS')
  })
})

describe('db psql', () => {
  it('connects with the vault password passed in the environment, never in argv', async () => {
    await createDatabase(deps, { name: 'interactive' })
    const u = await databaseUrl(deps, { name: 'interactive', reveal: true })
    const inv = psqlInvocation(findPgBinaries().tool('psql'), { host: u.host, port: u.port, user: u.owner, password: u.password, database: 'interactive' }, [
      '-XAtc',
      'SELECT current_user',
    ])
    expect(inv.args.join(' ')).not.toContain(u.password!)
    expect(inv.env.PGPASSWORD).toBe(u.password)
    const res = await run(inv.bin, inv.args, { env: inv.env, secrets: [u.password!] })
    expect(res.stdout.trim()).toBe('interactive')
  })
})

describe('migrations as the owner', () => {
  it('runs migrations as the owner role, so it owns what they create', async () => {
    await createDatabase(deps, { name: 'owned' })
    const d = writeMigrations(path.join(tmp.dir, 'owned'), { '1_t.sql': 'CREATE TABLE t (id int);\n' })
    await runMigrations({ connection: await ownerConnection(deps, 'owned'), dir: d })
    const r = await server.query<{ o: string }>("SELECT tableowner AS o FROM pg_tables WHERE tablename = 't'", [], 'owned')
    expect(r.rows[0]?.o).toBe('owned')
  })
})

describe('db drop', () => {
  it('drops the database, its MagFlock-made owner role and the vault secret', async () => {
    await createDatabase(deps, { name: 'gone' })
    const res = await dropDatabase(deps, { name: 'gone' })
    expect(res).toEqual({ name: 'gone', dropped: true, owner: 'gone', roleDropped: true, secretDeleted: true })
    expect((await server.query("SELECT 1 FROM pg_roles WHERE rolname = 'gone'")).rowCount).toBe(0)
    expect(secrets.map.has('db.gone.owner.password')).toBe(false)
    expect(await codeOf(dropDatabase(deps, { name: 'gone' }))).toBe('E_DB_NOT_FOUND')
  })

  it('refuses while a migration holds the lock on it (E_DB_BUSY)', async () => {
    await createDatabase(deps, { name: 'busy' })
    const c = new pg.Client({ ...server.connection('busy'), application_name: 'magflock-migrate' })
    await c.connect()
    try {
      await c.query('SELECT pg_advisory_lock(-8525285245963000605)')
      const err: unknown = await dropDatabase(deps, { name: 'busy' }).catch((e: unknown) => e)
      expect((err as { code: string }).code).toBe('E_DB_BUSY')
      expect((err as Error).message).toContain('magflock-migrate')
    } finally {
      await c.end()
    }
    await dropDatabase(deps, { name: 'busy' })
  })

  it('refuses with open sessions (E_DB_IN_USE) unless told to disconnect them', async () => {
    await createDatabase(deps, { name: 'inuse' })
    const c = new pg.Client(server.connection('inuse'))
    c.on('error', () => {})
    await c.connect()
    expect(await codeOf(dropDatabase(deps, { name: 'inuse' }))).toBe('E_DB_IN_USE')
    const res = await dropDatabase(deps, { name: 'inuse', disconnect: true })
    expect(res.dropped).toBe(true)
    await c.end().catch(() => {})
  })

  it('refuses the platform databases', async () => {
    expect(await codeOf(dropDatabase(deps, { name: 'postgres' }))).toBe('E_DB_PROTECTED')
    expect(await codeOf(dropDatabase({ ...deps, protectedNames: ['status_db'] }, { name: 'status_db' }))).toBe('E_DB_PROTECTED')
  })

  it('keeps a role that still owns another database', async () => {
    await createDatabase(deps, { name: 'first', owner: 'shared_owner' })
    await createDatabase(deps, { name: 'second', owner: 'shared_owner' })
    const res = await dropDatabase(deps, { name: 'first' })
    expect(res.roleDropped).toBe(false)
    expect(secrets.map.has('db.first.owner.password')).toBe(true)
  })
})

describe('ensureDatabase', () => {
  it('creates a missing database once when several callers race', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => ensureDatabase(server.connection(), 'raced')))
    expect(results.filter((r) => r.created)).toHaveLength(1)
    expect((await server.query("SELECT 1 FROM pg_database WHERE datname = 'raced'")).rowCount).toBe(1)
  })
})

describe('migrate --db-url --create-db', () => {
  it('several jobs creating and migrating a missing database at once all succeed, each file applied once', async () => {
    const { ensureDatabaseFromUrl } = await import('../../../src/databases/service.js')
    const d = writeMigrations(path.join(tmp.dir, 'created'), { '1_a.sql': 'CREATE TABLE a (id int);\n', '2_b.sql': 'CREATE TABLE b (id int);\n' })
    const job = async () => {
      await ensureDatabaseFromUrl(server.url('made_by_ci'))
      return runMigrations({ connection: server.url('made_by_ci'), dir: d })
    }
    const results = await Promise.all([job(), job(), job(), job()])
    expect(results.reduce((s, r) => s + r.applied.length, 0)).toBe(2)
    const rows = await server.query<{ n: number }>('SELECT count(*)::int AS n FROM migrations WHERE id > 0', [], 'made_by_ci')
    expect(rows.rows[0]?.n).toBe(2)
  })
})
