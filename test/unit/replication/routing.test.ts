import { describe, expect, it } from 'vitest'
import { syncStandbyNamesValue } from '../../../src/replication/actions.js'
import { flockUrl } from '../../../src/replication/manager.js'
import { primaryConninfo, standbySettings, type PgNode } from '../../../src/replication/pg.js'

const node = (name: string, port: number): PgNode => ({ name, host: '127.0.0.1', port, instanceDir: `/s/instances/${name}`, dataDir: `/s/instances/${name}/data`, logFile: `/s/instances/${name}/postgres.log` })

describe('flockUrl (client routing)', () => {
  const members = [
    { host: '127.0.0.1', port: 5434, role: 'replica' as const },
    { host: '127.0.0.1', port: 5433, role: 'primary' as const },
    { host: '127.0.0.1', port: 5435, role: 'fenced' as const },
  ]
  it('lists the primary first, leaves fenced instances out and asks libpq for a read-write session', () => {
    expect(flockUrl({ members, user: 'postgres', database: 'app', role: 'primary' })).toBe(
      'postgresql://postgres@127.0.0.1:5433,127.0.0.1:5434/app?target_session_attrs=read-write&connect_timeout=2',
    )
  })
  it('accepts any instance for reads', () => {
    expect(flockUrl({ members, user: 'postgres', database: 'app', role: 'any' })).toContain('target_session_attrs=any')
  })
})

describe('standby configuration', () => {
  it('names FIRST 1 of the synchronous standbys, quoted, and clears the setting when none is left', () => {
    expect(syncStandbyNamesValue(['r1'])).toBe('FIRST 1 ("r1")')
    expect(syncStandbyNamesValue([])).toBe('')
  })
  it('points a standby at the primary through a passfile, never a password, and resets inherited sync names', () => {
    const env = { superuser: 'postgres' }
    const ci = primaryConninfo(env, node('p', 5433), node('r1', 5434))
    expect(ci).toBe('host=127.0.0.1 port=5433 user=postgres passfile=/s/instances/r1/replication.pgpass application_name=r1 connect_timeout=2 keepalives_idle=2')
    const s = standbySettings({ superuser: 'postgres' } as never, node('p', 5433), node('r1', 5434), 'r1')
    expect(s).toMatchObject({ port: 5434, primary_slot_name: 'r1', synchronous_standby_names: '', recovery_target_timeline: 'latest' })
    expect(JSON.stringify(s)).not.toContain('password=')
  })
  it('names the replication role in primary_conninfo once the flock has it', () => {
    const ci = primaryConninfo({ superuser: 'postgres', replicator: { user: 'magflock_replicator', password: 'sekret' } }, node('p', 5433), node('r1', 5434))
    expect(ci).toContain('user=magflock_replicator ')
    expect(ci).not.toContain('sekret')
    expect(ci).not.toContain('user=postgres')
  })
})
