import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  alterRolePassword,
  connectionsByState,
  createRole,
  databaseStats,
  dropRole,
  otherSessions,
  roleExists,
  serverInfo,
  terminateSessions,
} from '../../../src/postgres/sql.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'

describe('postgres/sql against a real Postgres', () => {
  let db: TestPostgres
  beforeAll(async () => {
    db = await startTestPostgres()
  })
  afterAll(async () => {
    await db?.stop()
  })

  const login = async (user: string, password: string) => {
    const c = new pg.Client({ ...db.connection('postgres'), user, password })
    await c.connect()
    await c.end()
  }

  it('creates a role with an awkward name and password that can log in; ALTER ROLE changes it', async () => {
    const role = 'app "user"'
    const pw1 = "first'pass\\word"
    const pw2 = 'pässwörd-ünicode'
    await db.query(createRole(role, pw1).text)
    expect((await db.query(roleExists(role).text, roleExists(role).values)).rows[0]).toEqual({ exists: true })
    await login(role, pw1)
    await expect(login(role, 'nope')).rejects.toMatchObject({ code: '28P01' })
    const stored = await db.query<{ rolpassword: string }>('select rolpassword from pg_authid where rolname = $1', [role])
    expect(stored.rows[0]?.rolpassword).toMatch(/^SCRAM-SHA-256\$/)
    // Non-ASCII passwords go as a quoted literal and are hashed by the server (SASLprep).
    await db.query(alterRolePassword(role, pw2).text)
    await login(role, pw2)
    await expect(login(role, pw1)).rejects.toMatchObject({ code: '28P01' })
    await db.query(dropRole(role).text)
    expect((await db.query(roleExists(role).text, roleExists(role).values)).rows[0]).toEqual({ exists: false })
  })

  it('reports server info, database stats and connections by state', async () => {
    const info = (await db.query(serverInfo().text)).rows[0]
    expect(info).toMatchObject({ in_recovery: false, data_checksums: true })
    expect(info?.version_num).toBeGreaterThanOrEqual(150000)
    const stats = (await db.query<{ name: string; size_bytes: string }>(databaseStats().text)).rows
    expect(stats.map((r) => r.name)).toContain('postgres')
    expect(Number(stats.find((r) => r.name === 'postgres')?.size_bytes)).toBeGreaterThan(0)

    const idle = new pg.Client(db.connection('postgres'))
    await idle.connect()
    try {
      const states = (await db.query<{ state: string; count: number }>(connectionsByState().text)).rows
      expect(states.find((s) => s.state === 'idle')?.count).toBeGreaterThanOrEqual(1)
      expect(states.find((s) => s.state === 'active')?.count).toBeGreaterThanOrEqual(1)
      const q = otherSessions('postgres')
      expect((await db.query(q.text, q.values)).rows.length).toBeGreaterThanOrEqual(1)
      idle.on('error', () => undefined)
      const t = terminateSessions('postgres')
      const killed = (await db.query<{ terminated: boolean }>(t.text, t.values)).rows
      expect(killed.length).toBeGreaterThanOrEqual(1)
      expect(killed.every((k) => k.terminated)).toBe(true)
    } finally {
      await idle.end().catch(() => undefined)
    }
  })
})
