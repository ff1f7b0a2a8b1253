import { execa } from 'execa'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { S3RepositoryConfig } from '../../src/config/repository.js'
import { S3Repository } from '../../src/backup/repository/s3.js'
import { freePort } from '../../src/platform/ports.js'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import { NODE, ROOT } from '../helpers/cli.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { tempDir } from '../helpers/tmp.js'
import { s3ObjectFile, startS3, S3_ACCESS_KEY, S3_SECRET_KEY, type S3Server } from '../helpers/s3.js'
import { waitFor } from '../helpers/wait.js'
import { environOf } from '../helpers/procs.js'

/**
 * The disaster-recovery drill of docs/backup.md, through the built CLI: a flock writes its
 * encrypted backups and its WAL to an S3-compatible server (s3rver, its own process); the
 * machine is then lost (flock destroyed, state dir gone). A fresh project with nothing but the
 * repository settings, the repository credentials and the backup key lists the backup from the
 * object store and restores it to a point in time, replaying WAL read only from the object
 * store. A flipped byte in a stored object is named by verify and refused by restore.
 */
const BUCKET = 'drill'
const KEK = 'dr-drill-key-encryption-key-value'
const pgCtl = findPgBinaries().tool('pg_ctl')

function yaml(pgPort: number, metricsPort: number, endpoint: string): string {
  return [
    'postgres:',
    `  port: ${pgPort}`,
    '  settings:',
    '    fsync: "off"',
    'metrics:',
    `  port: ${metricsPort}`,
    'backup:',
    '  encryptionKey: secret:backup.kek',
    '  repositories:',
    '    - name: offsite',
    '      type: s3',
    `      endpoint: ${endpoint}`,
    `      bucket: ${BUCKET}`,
    '      prefix: flock-a',
    '      accessKeyId: secret:s3.access',
    '      secretAccessKey: secret:s3.secret',
    '',
  ].join('\n')
}

async function projectWithRepo(s3: S3Server): Promise<Flock> {
  const f = await createFlock({ yaml: yaml(await freePort(), await freePort(), s3.endpoint) })
  // The createFlock yaml ports are the ones it chose; rewrite with them so helpers connect right.
  writeFileSync(`${f.projectDir}/magflock.yaml`, yaml(f.pgPort, f.metricsPort, s3.endpoint))
  // Before the secrets are there, validation names the repository's missing credentials.
  const v = await f.run(['config', 'validate', '--check-secrets', '--json'])
  expect(v.exitCode).not.toBe(0)
  expect(JSON.stringify(v.json)).toContain('backup.repositories[0].accessKeyId')
  for (const [name, value] of [['s3.access', S3_ACCESS_KEY], ['s3.secret', S3_SECRET_KEY], ['backup.kek', KEK]] as const) {
    const r = await f.run(['secrets', 'set', name, '--from-stdin', '--json'], { input: value + '\n' })
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
  }
  return f
}

interface Listed {
  repository: string
  backups: Array<{ id: string; encrypted: boolean }>
  incomplete: unknown[]
}

describe('disaster-recovery drill: restore on a fresh state dir from the object store', { timeout: 400_000 }, () => {
  let s3: S3Server
  let a: Flock | undefined
  let b: Flock | undefined
  let id = ''
  let target = ''
  let oldPassword = ''
  /** A WAL object the point-in-time restore must read (it holds the commit after the target). */
  let walObject = ''

  beforeAll(async () => {
    s3 = await startS3([BUCKET])
  })
  afterAll(async () => {
    await a?.destroy()
    await b?.destroy()
    await s3?.stop()
  })

  it('the first machine stores an encrypted backup and its WAL in the repository', async () => {
    a = await projectWithRepo(s3)
    const up = await a.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    await a.sql('postgres', 'create database app')
    await a.sql('app', `create table t(v text); insert into t values ('before-backup')`)
    const c = await a.run<{ id: string; repositories: string[]; encrypted: boolean }>(['backup', 'create', '--encrypt', '--json'])
    expect(c.exitCode, c.stdout + c.stderr).toBe(0)
    const data = (c.json as { data: { id: string; repositories: string[]; encrypted: boolean } }).data
    expect(data.repositories).toEqual(['local', 'offsite'])
    expect(data.encrypted).toBe(true)
    id = data.id
    await a.sql('app', `insert into t values ('first')`)
    target = (await a.sql<{ t: string }>('postgres', 'select now()::text as t'))[0]!.t
    await new Promise((r) => setTimeout(r, 1100))
    await a.sql('app', `insert into t values ('second')`)
    const lsn = (await a.sql<{ l: string; f: string }>('postgres', 'select pg_switch_wal()::text as l, pg_walfile_name(pg_current_wal_lsn()) as f'))[0]!
    const sysid = (await a.sql<{ s: string }>('postgres', 'select system_identifier::text as s from pg_control_system()'))[0]!.s
    // The wal-shipper pushes every closed segment: wait until the one holding 'second' is there.
    const repo = new S3Repository(S3RepositoryConfig.parse({ name: 'offsite', type: 's3', endpoint: s3.endpoint, bucket: BUCKET, prefix: 'flock-a', accessKeyId: 'secret:x', secretAccessKey: 'secret:y' }), { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY })
    const closed = segBefore(lsn.f) // pg_switch_wal closed it: it holds 'second'
    walObject = `flock-a/wal/${sysid}/${closed}`
    await waitFor(`WAL up to ${lsn.l} in the repository`, async () => (await repo.list(`wal/${sysid}/`)).some((o) => /\/[0-9A-F]{24}$/.test(o.key) && o.key.slice(-24) >= closed), 90_000, 250)
    // Stored WAL is compressed: a 16 MiB segment takes far less.
    const objects = await repo.list(`wal/${sysid}/`)
    expect(objects.every((o) => o.size < 8 << 20)).toBe(true)
    repo.destroy()
    oldPassword = await a.superuserPassword()
    const l = await a.run<Listed>(['backup', 'list', '--repo', 'offsite', '--json'])
    expect((l.json as { data: Listed }).data.backups.map((x) => x.id)).toEqual([id])
  })

  it('is readable without MagFlock: the standalone script decrypts the backup and a WAL object, and plain Postgres starts from it', async () => {
    const out = tempDir('mf-decrypt-')
    try {
      const env = { MAGFLOCK_BACKUP_KEK: KEK, PATH: process.env.PATH ?? '' }
      const d = await execa(NODE, [path.join(ROOT, 'scripts/decrypt-backup.mjs'), 'backup', path.join(a!.layout.backupsDir, id), path.join(out.dir, 'plain')], { env, reject: false, extendEnv: false })
      expect(d.exitCode, String(d.stderr)).toBe(0)
      const wrong = await execa(NODE, [path.join(ROOT, 'scripts/decrypt-backup.mjs'), 'backup', path.join(a!.layout.backupsDir, id), path.join(out.dir, 'x')], { env: { ...env, MAGFLOCK_BACKUP_KEK: 'not the key' }, reject: false, extendEnv: false })
      expect(wrong.exitCode).toBe(1)
      expect(String(wrong.stderr)).toContain('wrong key')
      // Plain tools from here on: lz4, tar, pg_ctl.
      const data = path.join(out.dir, 'data')
      mkdirSync(path.join(data, 'pg_wal'), { recursive: true, mode: 0o700 })
      const sh = (cmd: string) => execa('bash', ['-c', cmd], { reject: false })
      expect((await sh(`lz4 -dc '${out.dir}/plain/base/base.tar.lz4' | tar -xf - -C '${data}' && tar -xf '${out.dir}/plain/base/pg_wal.tar' -C '${data}/pg_wal' && chown -R postgres '${out.dir}' && chmod 700 '${data}'`)).exitCode).toBe(0)
      const port = await freePort()
      const opts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='${out.dir}' -c archive_mode=off`
      const start = await execa('runuser', ['-u', 'postgres', '--', pgCtl, '-D', data, '-l', path.join(out.dir, 'pg.log'), '-o', opts, '-w', 'start'], { reject: false })
      expect(start.exitCode, String(start.stderr) + String(start.stdout)).toBe(0)
      try {
        expect(await restoredRows(port, oldPassword)).toEqual(['before-backup'])
      } finally {
        await execa('runuser', ['-u', 'postgres', '--', pgCtl, '-D', data, '-m', 'immediate', '-w', 'stop'], { reject: false })
      }
      // One WAL object straight from the object store's files, back to the raw segment.
      const sysid = (await a!.sql<{ s: string }>('postgres', 'select system_identifier::text as s from pg_control_system()'))[0]!.s
      const local = readdirSync(a!.layout.walDir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort()[0]!
      const w = await execa(NODE, [path.join(ROOT, 'scripts/decrypt-backup.mjs'), 'wal', s3ObjectFile(s3, BUCKET, `flock-a/wal/${sysid}/${local}`), sysid, local, path.join(out.dir, local)], { env, reject: false, extendEnv: false })
      expect(w.exitCode, String(w.stderr)).toBe(0)
      expect(readFileSync(path.join(out.dir, local)).equals(readFileSync(path.join(a!.layout.walDir, local)))).toBe(true)
    } finally {
      out.cleanup()
    }
  })

  it('the machine is lost; a fresh state dir with only the repository settings, its credentials and the backup key lists and restores to a point in time', async () => {
    await a!.destroy()
    a = undefined
    b = await projectWithRepo(s3)
    const up = await b.run(['up', '--json'])
    expect(up.exitCode, up.stdout + up.stderr).toBe(0)
    expect((await b.run<Listed>(['backup', 'list', '--json'])).json).toMatchObject({ ok: true, data: { repository: 'local', backups: [] } })
    const l = await b.run<Listed>(['backup', 'list', '--repo', 'offsite', '--json'])
    expect(l.exitCode, l.stdout + l.stderr).toBe(0)
    expect((l.json as { data: Listed }).data).toMatchObject({ repository: 'offsite', backups: [{ id, encrypted: true }], incomplete: [] })

    const v = await b.run(['backup', 'verify', id, '--repo', 'offsite', '--json'])
    expect(v.exitCode, v.stdout + v.stderr).toBe(0)

    const r = await b.run<{ port: number; pitr: boolean; role: string }>(['backup', 'restore', id, '--repo', 'offsite', '--to-instance', 'recovered', '--target-time', target, '--json'])
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const out = (r.json as { data: { port: number; pitr: boolean; role: string } }).data
    expect(out).toMatchObject({ pitr: true, role: 'standalone' })
    // The restored cluster keeps the lost machine's roles and passwords.
    const rows = await restoredRows(out.port, oldPassword)
    expect(rows).toEqual(['before-backup', 'first'])
    // WAL came through restore_command from the kernel's WAL server: Postgres (whose children
    // run restore_command) never had a repository credential or the backup key in its environment.
    const pid = await b.postmasterPid('recovered')
    expect(pid).toBeDefined()
    const env = environOf(pid!)
    expect(env).toBeDefined()
    const values = Object.values(env!).join('\n')
    for (const secret of [S3_SECRET_KEY, KEK]) expect(values).not.toContain(secret)
    expect(Object.keys(env!).filter((k) => /^AWS_|KEK|SECRET/i.test(k))).toEqual([])
  })

  it('a flipped byte in a WAL object the target needs: restore --repo fails naming the segment, nothing is left', async () => {
    const file = s3ObjectFile(s3, BUCKET, walObject)
    const good = readFileSync(file)
    const bad = Buffer.from(good)
    bad[bad.length - 64] = bad[bad.length - 64]! ^ 0x01
    writeFileSync(file, bad)
    try {
      const r = await b!.run(['backup', 'restore', id, '--repo', 'offsite', '--to-instance', 'damagedwal', '--target-time', target, '--json'])
      expect(r.exitCode, r.stdout + r.stderr).toBe(11)
      expect(r.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_VERIFY_FAILED' } })
      expect(JSON.stringify(r.json)).toContain(walObject.split('/').pop()!)
      const st = await b!.run<{ instances: Array<{ name: string }> }>(['status', '--json'])
      expect((st.json as { data: { instances: Array<{ name: string }> } }).data.instances.map((i) => i.name)).not.toContain('damagedwal')
    } finally {
      writeFileSync(file, good)
    }
  })

  it('a flipped byte in a stored object: verify --repo names it (exit 11) and restore --repo refuses', async () => {
    const file = s3ObjectFile(s3, BUCKET, `flock-a/backups/${id}/base/base.tar.lz4.mfenc`)
    const buf = readFileSync(file)
    buf[Math.floor(buf.length / 2)] = buf[Math.floor(buf.length / 2)]! ^ 0x10
    writeFileSync(file, buf)
    const v = await b!.run(['backup', 'verify', id, '--repo', 'offsite', '--no-deep', '--json'])
    expect(v.exitCode).toBe(11)
    expect(v.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_VERIFY_FAILED' } })
    expect(JSON.stringify(v.json)).toContain('base/base.tar.lz4.mfenc')
    // Streamed into the new instance: the damaged object is found while it is extracted.
    const r = await b!.run(['backup', 'restore', id, '--repo', 'offsite', '--to-instance', 'damaged', '--json'])
    expect(r.exitCode).toBe(11)
    expect(r.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_VERIFY_FAILED' } })
    expect(JSON.stringify(r.json)).toContain('base/base.tar.lz4.mfenc')
    // Nothing left behind: no instance dir, no staging dir.
    expect(existsSync(path.join(b!.layout.instancesDir, 'damaged'))).toBe(false)
    expect(readdirSync(path.join(b!.layout.root, 'tmp')).filter((n) => n.startsWith('repo-'))).toEqual([])
    const st = await b!.run<{ instances: Array<{ name: string }> }>(['status', '--json'])
    expect((st.json as { data: { instances: Array<{ name: string }> } }).data.instances.map((i) => i.name)).not.toContain('damaged')
  })

  it('wrong repository credentials: a clear error with a hint, exit 9', async () => {
    const r0 = await b!.run(['secrets', 'set', 's3.access', '--from-stdin', '--json'], { input: 'NOT-THE-KEY\n' })
    expect(r0.exitCode).toBe(0)
    const l = await b!.run(['backup', 'list', '--repo', 'offsite', '--json'])
    expect(l.exitCode).toBe(9)
    expect(l.json).toMatchObject({ ok: false, error: { code: 'E_BACKUP_REPO_AUTH' } })
    expect(JSON.stringify(l.json)).toContain('s3.access')
    expect(JSON.stringify(l.json)).not.toContain('NOT-THE-KEY')
  })
})

function segBefore(name: string): string {
  const n = BigInt('0x' + name.slice(8)) // log and seg as one 16-hex number; seg wraps at 0x100
  const log = n >> 32n
  const seg = n & 0xffffffffn
  const prev = seg === 0n ? ((log - 1n) << 32n) | 0xffn : (log << 32n) | (seg - 1n)
  return name.slice(0, 8) + prev.toString(16).toUpperCase().padStart(16, '0')
}

async function restoredRows(port: number, password: string): Promise<string[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'app' })
  await c.connect()
  try {
    return (await c.query<{ v: string }>('select v from t order by v')).rows.map((r) => r.v)
  } finally {
    await c.end()
  }
}
