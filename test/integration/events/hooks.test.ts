import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backupCreate, backupList } from '../../../src/api/backup.js'
import { dbCreate } from '../../../src/api/db.js'
import { migrate } from '../../../src/api/migrations.js'
import { readEvents, type StreamLine } from '../../../src/client/events.js'
import { codeOf, errorOf, rawRequest, startSecurityFlock, type SecurityFlock } from '../../security/harness.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * Extension hooks through the real socket: an extension (a token with hooks grants) follows
 * its event stream, registers for a point and answers hook.invoke events; the kernel's real
 * backup and migrate paths wait for veto hooks, skip a hook that times out, and tell
 * observers afterwards.
 */
type Verdict = 'allow' | 'veto' | 'hang'

interface FakeExtension {
  name: string
  token: string
  invocations: StreamLine[]
  behave: Verdict
  reason: string
  register(point: string, effect: 'observe' | 'veto', timeoutMs: number): Promise<{ status: number; body: Record<string, unknown> }>
  stop(): void
}

let f: SecurityFlock
const extensions: FakeExtension[] = []

async function extension(name: string, grants: string[]): Promise<FakeExtension> {
  const token = (await f.kernel.tokens.create({ role: 'extension', name: `ext-${name}`, extension: name, grants })).token
  const abort = new AbortController()
  const before = f.kernel.services.journal.subscribers
  const x: FakeExtension = {
    name,
    token,
    invocations: [],
    behave: 'allow',
    reason: '',
    register: async (point, effect, timeoutMs) => {
      const r = await rawRequest(f.layout.socket, token, { method: 'POST', path: '/v1/hooks', body: { point, effect, timeoutMs } })
      return { status: r.status, body: r.body }
    },
    stop: () => abort.abort(),
  }
  void readEvents({
    socketPath: f.layout.socket,
    stateDir: f.stateDir,
    token,
    query: { follow: true },
    signal: abort.signal,
    onLine: (l) => {
      if (l.type !== 'hook.invoke') return
      x.invocations.push(l)
      const d = l.data as { invocationId: string; effect: string }
      if (d.effect !== 'veto' || x.behave === 'hang') return
      void rawRequest(f.layout.socket, token, { method: 'POST', path: `/v1/hooks/invocations/${d.invocationId}`, body: { verdict: x.behave, reason: x.reason } })
    },
  }).catch(() => undefined)
  await waitFor(`${name} follows its stream`, async () => f.kernel.services.journal.subscribers > before, 10_000)
  extensions.push(x)
  return x
}

function audit(): Array<{ action: string; actor: string; result: string; target?: string; details?: Record<string, unknown> }> {
  return readFileSync(f.layout.auditLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
}

const backups = async () => (await f.admin.call(backupList, {})).backups.length

beforeAll(async () => {
  f = await startSecurityFlock({ migrations: { '001_t.sql': 'create table hooked (i int);\n' } })
  await f.admin.call(dbCreate, { name: 'app' })
}, 180_000)
afterAll(async () => {
  for (const x of extensions) x.stop()
  await f?.stop()
})

describe('registering a hook', () => {
  it('needs the matching hooks grant; failover points are observe-only; operator tokens cannot', async () => {
    const x = await extension('nogrant', ['hooks:backup.after:observe'])
    const r = await x.register('backup.before', 'veto', 1000)
    expect(r.status).toBe(403)
    expect((r.body.error as { code: string }).code).toBe('E_HOOK_NOT_GRANTED')
    const observeOnly = await x.register('backup.after', 'veto', 1000)
    expect((observeOnly.body.error as { code: string }).code).toBe('E_HOOK_OBSERVE_ONLY')
    expect((await x.register('backup.after', 'observe', 1000)).status).toBe(200)
    const op = await f.request('operator', { method: 'POST', path: '/v1/hooks', body: { point: 'backup.before', effect: 'observe' } })
    expect(op.status).toBe(403)
    expect(codeOf(op)).toBe('E_FORBIDDEN')
    const bad = await rawRequest(f.layout.socket, x.token, { method: 'POST', path: '/v1/hooks', body: { point: 'rm -rf', effect: 'observe' } })
    expect(bad.status).toBe(400)
  })
})

describe('backup.before and backup.after', () => {
  let guard: FakeExtension
  let watcher: FakeExtension
  beforeAll(async () => {
    guard = await extension('guard', ['hooks:backup.before:veto'])
    watcher = await extension('watcher', ['hooks:backup.after:observe'])
    expect((await guard.register('backup.before', 'veto', 20_000)).status).toBe(200)
    expect((await watcher.register('backup.after', 'observe', 1000)).status).toBe(200)
  })

  it('a veto stops the backup before it starts: E_HOOK_VETOED names the extension and its reason', async () => {
    guard.behave = 'veto'
    guard.reason = 'maintenance window until 23:00'
    const n = await backups()
    const err = await errorOf(f.admin.call(backupCreate, { type: 'logical', db: 'app' }))
    expect(err.code).toBe('E_HOOK_VETOED')
    expect(err.message).toContain('"guard"')
    expect(err.message).toContain('maintenance window until 23:00')
    expect(err.hint).toContain('ext disable guard')
    expect(await backups()).toBe(n)
    expect(audit().some((a) => a.action === 'hook.veto' && a.actor === 'ext:guard' && a.target === 'backup.before')).toBe(true)
    const inv = guard.invocations.at(-1)!.data as { point: string; context: Record<string, unknown> }
    expect(inv.point).toBe('backup.before')
    expect(inv.context).toMatchObject({ type: 'logical', database: 'app' })
  })

  it('allowed: the backup runs and observers hear about it afterwards', async () => {
    guard.behave = 'allow'
    const seen = watcher.invocations.length
    const n = await backups()
    const r = await f.admin.call(backupCreate, { type: 'logical', db: 'app' })
    expect(await backups()).toBe(n + 1)
    await waitFor('backup.after observed', async () => watcher.invocations.length > seen, 10_000)
    const inv = watcher.invocations.at(-1)!.data as { point: string; context: Record<string, unknown> }
    expect(inv.point).toBe('backup.after')
    expect(inv.context).toMatchObject({ ok: true, id: r.id, database: 'app' })
  })

  it('a hook that does not answer in time is logged, audited and skipped', async () => {
    guard.behave = 'hang'
    expect((await guard.register('backup.before', 'veto', 300)).status).toBe(200)
    const n = await backups()
    await f.admin.call(backupCreate, { type: 'logical', db: 'app' })
    expect(await backups()).toBe(n + 1)
    expect(audit().some((a) => a.action === 'hook.timeout' && a.actor === 'ext:guard' && a.result === 'error')).toBe(true)
    const timeouts = [...f.kernel.services.journal.read(0)].flat().filter((e) => e.type === 'hook.timeout')
    expect(timeouts.at(-1)?.data).toMatchObject({ extension: 'guard', point: 'backup.before', timeoutMs: 300 })
    const log = readFileSync(f.layout.kernelLog, 'utf8')
    expect(log).toContain('hook timed out; skipped')
  })

  it('an extension answers only its own invocations, once', async () => {
    guard.behave = 'hang'
    expect((await guard.register('backup.before', 'veto', 5_000)).status).toBe(200)
    const seen = guard.invocations.length
    const running = f.admin.call(backupCreate, { type: 'logical', db: 'app' })
    await waitFor('invocation', async () => guard.invocations.length > seen, 10_000)
    const id = (guard.invocations.at(-1)!.data as { invocationId: string }).invocationId
    const other = await rawRequest(f.layout.socket, watcher.token, { method: 'POST', path: `/v1/hooks/invocations/${id}`, body: { verdict: 'veto', reason: 'not mine' } })
    expect(other.status).toBe(404)
    expect(codeOf(other)).toBe('E_HOOK_INVOCATION_NOT_FOUND')
    const own = await rawRequest(f.layout.socket, guard.token, { method: 'POST', path: `/v1/hooks/invocations/${id}`, body: { verdict: 'allow', reason: '' } })
    expect(own.status, own.text).toBe(200)
    const again = await rawRequest(f.layout.socket, guard.token, { method: 'POST', path: `/v1/hooks/invocations/${id}`, body: { verdict: 'veto', reason: 'late' } })
    expect(again.status).toBe(404)
    await running
    // The watcher (no subscribe grant) saw only hook invocations of its own hooks.
    expect(watcher.invocations.every((l) => (l.data as { extension: string }).extension === 'watcher')).toBe(true)
  })
})

describe('migrate.before', () => {
  it('a veto stops the migration before anything is applied; a dry run does not ask', async () => {
    const x = await extension('schema-guard', ['hooks:migrate.before:veto'])
    x.behave = 'veto'
    x.reason = 'schema freeze'
    expect((await x.register('migrate.before', 'veto', 20_000)).status).toBe(200)
    const err = await errorOf(f.admin.call(migrate, { database: 'app' }))
    expect(err.code).toBe('E_HOOK_VETOED')
    expect(err.message).toContain('schema-guard')
    expect(err.message).toContain('schema freeze')
    const asked = x.invocations.length
    const dry = await f.admin.call(migrate, { database: 'app', dryRun: true })
    expect(dry.pending.length + dry.applied.length).toBe(1)
    expect(dry.alreadyApplied).toBe(0)
    expect(x.invocations.length).toBe(asked)
    x.behave = 'allow'
    const done = await f.admin.call(migrate, { database: 'app' })
    expect(done.applied.map((a) => a.file)).toEqual(['001_t.sql'])
  })
})
