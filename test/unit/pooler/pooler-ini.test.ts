import { describe, expect, it } from 'vitest'
import { poolerLayout, renderIni, renderUserlist } from '../../../src/pooler/ini.js'
import { PoolerConfig } from '../../../src/config/schema.js'
import { PrimaryHooks } from '../../../src/replication/hooks.js'

describe('pooler ini and userlist', () => {
  const layout = poolerLayout('/state')
  const pooler = PoolerConfig.parse({ enabled: true, port: 7000 })

  it('points every database at the primary, SCRAM auth, limits from config', () => {
    const ini = renderIni({ pooler, primary: { host: '127.0.0.1', port: 5434 }, adminUser: 'postgres', layout })
    expect(ini).toContain('* = host=127.0.0.1 port=5434')
    expect(ini).toMatch(/^listen_port = 7000$/m)
    expect(ini).toMatch(/^auth_type = scram-sha-256$/m)
    expect(ini).toMatch(/^pool_mode = transaction$/m)
    expect(ini).toMatch(/^default_pool_size = 20$/m)
    expect(ini).toMatch(/^max_client_conn = 1000$/m)
    expect(ini).toContain('auth_file = /state/pooler/userlist.txt')
    expect(ini).toMatch(/^admin_users = postgres$/m)
  })

  it('refuses a value that would inject a line', () => {
    expect(() => renderIni({ pooler, primary: { host: '127.0.0.1', port: 5434 }, adminUser: 'postgres\nauth_type = trust', layout })).toThrow(/invalid pgbouncer.ini value/)
  })

  it('userlist: SCRAM secrets only, quotes doubled, plain passwords dropped', () => {
    const text = renderUserlist([
      { name: 'app', secret: 'SCRAM-SHA-256$4096:c2FsdA==$a:b' },
      { name: 'we"ird', secret: 'SCRAM-SHA-256$4096:eA==$c:d' },
      { name: 'legacy', secret: 'md5abcdef' },
    ])
    expect(text).toBe('"app" "SCRAM-SHA-256$4096:c2FsdA==$a:b"\n"we""ird" "SCRAM-SHA-256$4096:eA==$c:d"\n')
  })

  it('config rejects bad values', () => {
    expect(PoolerConfig.safeParse({ poolMode: 'sometimes' }).success).toBe(false)
    expect(PoolerConfig.safeParse({ defaultPoolSize: 0 }).success).toBe(false)
    expect(PoolerConfig.safeParse({ host: '0.0.0.0' }).success).toBe(false)
    expect(PoolerConfig.parse({})).toMatchObject({ enabled: false, port: 6432, poolMode: 'transaction' })
  })
})

describe('primary-change hooks', () => {
  it('run in order, report failures without throwing, and unregister', async () => {
    const calls: string[] = []
    const errors: string[] = []
    const hooks = new PrimaryHooks()
    const off1 = hooks.register({ beforeSwitchover: async (from, to) => void calls.push(`a:${from.name}->${to.name}`) })
    const off2 = hooks.register({
      beforeSwitchover: async () => {
        throw new Error('boom')
      },
      primaryChanged: async (to, how) => void calls.push(`b:${to.name}:${how.planned}`),
    })
    const n = (name: string) => ({ name, host: '127.0.0.1', port: 1 })
    await hooks.run('beforeSwitchover', [n('p'), n('r1')], (e) => errors.push(e.message))
    await hooks.run('primaryChanged', [n('r1'), { planned: false, from: 'p' }], (e) => errors.push(e.message))
    off1()
    off2()
    await hooks.run('beforeSwitchover', [n('p'), n('r1')], (e) => errors.push(e.message))
    expect(calls).toEqual(['a:p->r1', 'b:r1:false'])
    expect(errors).toEqual(['boom'])
    // Another kernel's hooks (another PrimaryHooks) never see these.
    const other = new PrimaryHooks()
    other.register({ primaryChanged: async () => void calls.push('other') })
    await hooks.run('primaryChanged', [n('r1'), { planned: false, from: 'p' }], (e) => errors.push(e.message))
    expect(calls).toEqual(['a:p->r1', 'b:r1:false'])
  })
})
