import { describe, expect, it } from 'vitest'
import { confValue, INCLUDE_LINE, magflockSettings, renderMagflockConf, renderPgHba, socketDirFor, withInclude } from '../../../src/postgres/conf.js'

describe('postgres/conf', () => {
  it('quotes values as postgresql.conf literals', () => {
    expect(confValue(true)).toBe('on')
    expect(confValue(false)).toBe('off')
    expect(confValue(42)).toBe('42')
    expect(confValue("it's")).toBe("'it''s'")
    expect(confValue('a\\b')).toBe("'a\\\\b'")
  })

  it('writes MagFlock defaults and lets postgres.settings override them', () => {
    const s = magflockSettings({ port: 6000, instanceDir: '/s/i', settings: { wal_keep_size: '1GB', work_mem: '64MB' } })
    expect(s).toMatchObject({
      listen_addresses: '127.0.0.1',
      port: 6000,
      unix_socket_directories: '/s/i',
      logging_collector: false,
      wal_level: 'replica',
      max_wal_senders: 10,
      max_replication_slots: 10,
      hot_standby: true,
      password_encryption: 'scram-sha-256',
      wal_keep_size: '1GB',
      work_mem: '64MB',
    })
    const text = renderMagflockConf({ port: 6000, instanceDir: '/s/i' })
    expect(text).toContain("listen_addresses = '127.0.0.1'")
    expect(text).toContain('port = 6000')
    expect(text).toContain('logging_collector = off')
  })

  it('falls back to TCP only when the socket path would be too long', () => {
    expect(socketDirFor('/short', 5432)).toBe('/short')
    const long = '/' + 'x'.repeat(95)
    expect(socketDirFor(long, 5432)).toBe('')
    expect(renderMagflockConf({ port: 5432, instanceDir: long })).toContain("unix_socket_directories = ''")
  })

  it('refuses a setting name that could inject configuration with E_POSTGRES_INVALID_SETTING', () => {
    expect(() => renderMagflockConf({ port: 1, instanceDir: '/i', settings: { 'x = 1\nfsync': 'off' } })).toThrow(
      expect.objectContaining({ code: 'E_POSTGRES_INVALID_SETTING' }),
    )
    expect(renderMagflockConf({ port: 1, instanceDir: '/i', settings: { 'auto_explain.log_min_duration': 5 } })).toContain('auto_explain.log_min_duration = 5')
  })

  it('adds the include line to postgresql.conf exactly once', () => {
    const once = withInclude('shared_buffers = 128MB')
    expect(once.endsWith(`${INCLUDE_LINE}\n`)).toBe(true)
    expect(withInclude(once)).toBe(once)
  })

  it('allows only SCRAM, on the socket and loopback; replication only for the replication role and the superuser', () => {
    const hba = renderPgHba('postgres')
    const rules = hba.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/))
    expect(rules).toEqual([
      ['local', 'all', 'all', 'scram-sha-256'],
      ['host', 'all', 'all', '127.0.0.1/32', 'scram-sha-256'],
      ['host', 'replication', 'magflock_replicator', '127.0.0.1/32', 'scram-sha-256'],
      ['host', 'replication', 'postgres', '127.0.0.1/32', 'scram-sha-256'],
    ])
  })
})
