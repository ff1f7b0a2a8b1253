import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../../src/telemetry/logger.js'
import { tempDir } from '../../helpers/tmp.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>>; text: () => string } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString())
      cb()
    },
  })
  const text = () => chunks.join('')
  return { stream, text, lines: () => text().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) }
}

describe('createLogger', () => {
  it('writes JSON lines with flock, env, level and time; children add component/instance', () => {
    const out = capture()
    const log = createLogger({ base: { flock: 'demo', env: 'dev' }, destination: out.stream })
    log.child({ component: 'postgres' }).child({ instance: 'primary' }).info('started')
    const [line] = out.lines()
    expect(line).toMatchObject({ level: 'info', flock: 'demo', env: 'dev', component: 'postgres', instance: 'primary', msg: 'started' })
    expect(typeof line?.time).toBe('string')
  })

  it('redacts password, token and secret fields at any depth, and secret-shaped strings', () => {
    const out = capture()
    const log = createLogger({ base: { flock: 'demo', env: 'dev' }, destination: out.stream })
    log.info(
      {
        password: 'pw-top',
        conn: { host: 'h', password: 'pw-nested' },
        deep: { a: { b: { c: { secret: 'sec-deep' } } } },
        token: 'tok-1',
        headers: { authorization: 'Bearer mf_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz' },
        url: 'postgresql://postgres:pw-url@127.0.0.1/app',
        tokenId: 'abcd1234',
      },
      'connecting',
    )
    const text = out.text()
    for (const s of ['pw-top', 'pw-nested', 'sec-deep', 'tok-1', 'mf_zzzz', 'pw-url']) expect(text).not.toContain(s)
    const [line] = out.lines()
    expect(line).toMatchObject({ password: '[redacted]', conn: { host: 'h', password: '[redacted]' }, tokenId: 'abcd1234' })
  })

  it('keeps error details, scrubbing secrets from the message', () => {
    const out = capture()
    const log = createLogger({ base: { flock: 'demo', env: 'dev' }, destination: out.stream })
    log.error({ err: new Error('connect to postgres://u:pw-err@127.0.0.1/db failed') }, 'boom')
    const [line] = out.lines()
    const err = line?.err as Record<string, unknown>
    expect(err.type).toBe('Error')
    expect(err.message).toContain('failed')
    expect(String(err.stack)).toContain('Error')
    expect(out.text()).not.toContain('pw-err')
  })

  it('honours the level', () => {
    const out = capture()
    const log = createLogger({ base: { flock: 'demo', env: 'dev' }, level: 'warn', destination: out.stream })
    log.info('hidden')
    log.warn('shown')
    expect(out.lines().map((l) => l.msg)).toEqual(['shown'])
  })

  it('appends to a 0600 file', () => {
    const tmp = tempDir('mf-log-')
    cleanups.push(tmp.cleanup)
    const file = path.join(tmp.dir, 'sub', 'kernel.log')
    createLogger({ file, base: { flock: 'demo', env: 'dev' } }).info('one')
    createLogger({ file, base: { flock: 'demo', env: 'dev' } }).info('two')
    const msgs = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg)
    expect(msgs).toEqual(['one', 'two'])
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })

  it('writes to the file and stdout when both are asked for (foreground), at every level', () => {
    const tmp = tempDir('mf-log-')
    cleanups.push(tmp.cleanup)
    const file = path.join(tmp.dir, 'kernel.log')
    const log = createLogger({ file, stdout: true, level: 'debug', base: { flock: 'demo', env: 'dev' } })
    log.debug('foreground debug line')
    const msgs = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg)
    expect(msgs).toEqual(['foreground debug line'])
  })
})


describe('logger value redaction', () => {
  it('scrubs a value the vault has seen, in any field or message', async () => {
    const { redactor } = await import('../../../src/secrets/redact.js')
    const { createLogger } = await import('../../../src/telemetry/logger.js')
    const { Writable } = await import('node:stream')
    const lines: string[] = []
    const dest = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
    redactor.add('Marker-Secret-1234567')
    const log = createLogger({ base: { flock: 'f', env: 'test' }, destination: dest })
    log.info({ note: 'value is Marker-Secret-1234567' }, 'saw Marker-Secret-1234567 here')
    await new Promise((r) => setTimeout(r, 10))
    expect(lines.join('')).not.toContain('Marker-Secret-1234567')
    expect(lines.join('')).toContain('saw')
  })
})

describe('kernel.log lines have each key once', () => {
  /** Keys named more than once in a pino line (JSON.parse would hide the repeats). */
  function repeatedKeys(line: string): string[] {
    const found: string[] = []
    const keys = [...line.matchAll(/[{,]"((?:[^"\\]|\\.)*)":/g)].map((m) => m[1]!)
    const seen = new Set<string>()
    for (const k of keys) {
      if (seen.has(k)) found.push(k)
      seen.add(k)
    }
    return found
  }

  it('a child bound to an instance that logs that instance again writes "instance" once, the call winning', () => {
    const out = capture()
    const log = createLogger({ base: { flock: 'demo', env: 'dev' }, destination: out.stream })
    log.child({ component: 'postgres' }).child({ instance: 'replica' }).info({ instance: 'r1', pid: 42, env: 'dev' }, 'started "postgres", {x}')
    const text = out.text()
    expect(repeatedKeys(text.trim())).toEqual([])
    expect(out.lines()[0]).toMatchObject({ component: 'postgres', instance: 'r1', pid: 42, env: 'dev', msg: 'started "postgres", {x}' })
  })

  it('leaves a line without repeats byte for byte as pino wrote it', () => {
    const out = capture()
    const log = createLogger({ base: { flock: 'demo', env: 'dev' }, destination: out.stream })
    log.info({ nested: { a: 1, b: [1, { c: '"},{"' }] } }, 'plain')
    const text = out.text()
    expect(repeatedKeys(text.trim())).toEqual([])
    expect(text).toMatch(/^\{"level":"info","time":"[^"]+","pid":\d+,"flock":"demo","env":"dev","nested":\{"a":1,"b":\[1,\{"c":"\\"},\{\\""\}\]\},"msg":"plain"\}\n$/)
  })
})
